/* Caseline desk comforts: desktop notifications, their chime, and the theme choice.
 *
 * - The desk socket (desk.js) re-dispatches every push as a "caseline:push" DOM event.
 *   "notify" pushes (channels_app/notify.py: a case assigned to me, a case of mine at
 *   risk, a customer reply on a case I own or follow, each kind only when the user wants
 *   it) become browser notifications when the browser has the user's permission; the
 *   permission is asked only when the user presses "Turn on notifications" (My settings).
 *   With the chime on, a short sound plays too. Clicking a notification opens the case.
 * - "hello" and "prefs" pushes carry the stored theme and chime: the theme is mirrored in
 *   localStorage (theme.js applies it before the next page paints).
 * - On My settings, choosing a theme shows it at once; the saved value is mirrored on load.
 */
(function () {
  "use strict";

  function supported() {
    return typeof window.Notification === "function";
  }

  function permission() {
    return supported() ? window.Notification.permission : "unsupported";
  }

  // ---- The chime -------------------------------------------------------------------------

  var audio = null;

  function chime() {
    var url = document.body.getAttribute("data-notify-sound");
    if (!url) {
      return;
    }
    try {
      audio = audio || new window.Audio(url);
      audio.currentTime = 0;
      var playing = audio.play();
      if (playing && playing.catch) {
        playing.catch(function () {}); // autoplay refused before any gesture: silent, not broken
      }
    } catch (e) {
      // no audio support: notifications still show
    }
  }

  // ---- Notifications ---------------------------------------------------------------------

  function show(message) {
    if (permission() !== "granted") {
      return;
    }
    var notice;
    try {
      notice = new window.Notification(message.title, { body: message.body || "", tag: message.tag || "" });
    } catch (e) {
      return; // some browsers only notify from a service worker: nothing to show here
    }
    if (notice) {
      notice.onclick = function () {
        window.focus();
        if (message.url) {
          window.location.assign(message.url);
        }
        notice.close();
      };
    }
    if (message.sound) {
      chime();
    }
  }

  function describePermission() {
    var state = document.getElementById("notify-permission-state");
    var button = document.querySelector("[data-notify-enable]");
    if (!state) {
      return;
    }
    var text = {
      granted: "Notifications are on in this browser.",
      denied: "This browser blocks the desk's notifications: allow them in the browser's site settings.",
      default: "Desktop notifications need your browser's permission.",
      unsupported: "This browser cannot show desktop notifications.",
    }[permission()];
    state.textContent = text || "";
    if (button) {
      button.hidden = permission() !== "default";
    }
  }

  function askPermission() {
    if (!supported() || permission() !== "default") {
      describePermission();
      return;
    }
    // Asked only here, after the user pressed the button.
    var asked = window.Notification.requestPermission(describePermission);
    if (asked && asked.then) {
      asked.then(describePermission);
    }
  }

  // ---- Theme -----------------------------------------------------------------------------

  function remember(theme) {
    if (window.CaselineTheme && theme) {
      window.CaselineTheme.remember(theme);
    }
  }

  function onPush(event) {
    var message = event.detail || {};
    if (message.type === "notify") {
      show(message);
    } else if (message.type === "hello" && message.prefs) {
      remember(message.prefs.theme);
    } else if (message.type === "prefs") {
      remember(message.theme);
    }
  }

  function onChange(event) {
    var target = event.target;
    if (target && target.hasAttribute && target.hasAttribute("data-theme-choice") && target.checked) {
      // A preview until the form is saved; the saved value comes back with the page.
      if (window.CaselineTheme) {
        window.CaselineTheme.apply(target.value);
      }
    }
  }

  function onClick(event) {
    var target = event.target;
    if (!target || !target.closest) {
      return;
    }
    if (target.closest("[data-notify-enable]")) {
      askPermission();
    } else if (target.closest("[data-notify-test]")) {
      chime();
    }
  }

  function start() {
    document.addEventListener("caseline:push", onPush);
    document.addEventListener("change", onChange);
    document.addEventListener("click", onClick);
    var saved = document.querySelector("[data-theme-saved]");
    if (saved) {
      remember(saved.getAttribute("data-theme-saved"));
    }
    describePermission();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
