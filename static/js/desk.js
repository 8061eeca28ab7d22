/* Caseline desk: the little script every page loads (no inline JS: the CSP forbids it).
 *
 * - Service-promise countdowns tick in the browser from server-given due times:
 *   <time class="countdown" data-due="2025-01-01T10:00:00Z">in 42m</time>
 *   The text format matches cases/templatetags/desk.py countdown_text.
 * - Filter forms marked data-autosubmit submit when a select changes.
 *
 * Live updates over the websocket at /ws/desk/ will hook in here too.
 */
(function () {
  "use strict";

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function countdownText(ms) {
    var seconds = Math.trunc(ms / 1000);
    var overdue = seconds < 0;
    var left = Math.abs(seconds);
    var days = Math.floor(left / 86400);
    var hours = Math.floor((left % 86400) / 3600);
    var minutes = Math.floor((left % 3600) / 60);
    var secs = left % 60;
    var span;
    if (days) {
      span = days + "d " + hours + "h";
    } else if (hours) {
      span = hours + "h " + pad(minutes) + "m";
    } else if (minutes >= 5) {
      span = minutes + "m";
    } else {
      span = minutes + "m " + pad(secs) + "s";
    }
    return overdue ? span + " overdue" : "in " + span;
  }

  function tick() {
    var now = Date.now();
    var clocks = document.querySelectorAll("[data-due]");
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) {
        continue;
      }
      var text = countdownText(due - now);
      if (el.textContent !== text) {
        el.textContent = text;
      }
      el.classList.toggle("is-overdue", due <= now);
    }
  }

  function autosubmit(event) {
    var field = event.target;
    var form = field && field.form;
    if (form && form.hasAttribute("data-autosubmit") && field.tagName === "SELECT") {
      if (form.requestSubmit) {
        form.requestSubmit();
      } else {
        form.submit();
      }
    }
  }

  function start() {
    tick();
    window.setInterval(tick, 1000);
    document.addEventListener("change", autosubmit);
    // Swapped-in partials carry their own data-due attributes: show them right away.
    document.body.addEventListener("htmx:afterSettle", tick);
  }

  if (typeof document === "undefined") {
    // Loaded outside a browser (the test suite checks the format against the server's).
    module.exports = { countdownText: countdownText };
    return;
  }

  window.Caseline = { countdownText: countdownText, tick: tick };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
