/* Caseline theme, applied before the page paints (loaded in <head> without defer, so no flash).
 *
 * The user's choice (light, dark, or the system's: prefers-color-scheme) is stored with their
 * desk preferences on the server and mirrored here in localStorage. The desk socket's "hello"
 * and "prefs" pushes and the My settings page bring the stored value (comforts.js calls
 * remember); CSS reads <html data-theme="light|dark">, and no attribute means the system's.
 */
(function () {
  "use strict";

  var KEY = "caseline.theme";
  var THEMES = { light: true, dark: true, system: true };

  function apply(theme) {
    var root = document.documentElement;
    if (theme === "light" || theme === "dark") {
      root.setAttribute("data-theme", theme);
    } else {
      root.removeAttribute("data-theme");
    }
  }

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return THEMES[value] ? value : "system";
    } catch (e) {
      return "system"; // storage refused (privacy settings): the system's theme
    }
  }

  function remember(theme) {
    if (!THEMES[theme]) {
      return;
    }
    try {
      window.localStorage.setItem(KEY, theme);
    } catch (e) {
      // not kept for the next page; applied for this one
    }
    apply(theme);
  }

  apply(stored());
  window.CaselineTheme = { apply: apply, remember: remember, stored: stored };
})();
