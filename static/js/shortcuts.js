/* Caseline keyboard shortcuts (the list: templates/cases/partials/shortcuts.html, shown with "?").
 *
 *   j / k      next / previous case in the queue (the row's reference link takes the focus)
 *   Enter, o   open the selected case
 *   r / n      reply to the customer / write an internal note (the composer's tab, focused)
 *   a          assign the case to me (Claim when it is nobody's)
 *   e          escalate (opens the escalation form, its reason focused)
 *   g then q   back to the queue
 *   ?          the list of shortcuts (a modal dialog)
 *
 * A shortcut never fires while the user types (input, textarea, select, contenteditable),
 * with Ctrl, Alt or Meta held, or while the list is open (Esc closes it).
 */
(function () {
  "use strict";

  var SEQUENCE_MS = 1500;
  var pendingG = 0;

  function typing(target) {
    if (!target || target === document.body) {
      return false;
    }
    var tag = target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") {
      return true;
    }
    return !!(target.isContentEditable || (target.closest && target.closest("[contenteditable]")));
  }

  function help() {
    return document.getElementById("shortcuts-help");
  }

  // ---- The queue ---------------------------------------------------------------------------

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#queue-rows tr[data-case]"));
  }

  function currentRow() {
    return document.querySelector("#queue-rows tr.is-current");
  }

  function move(step) {
    var list = rows();
    if (!list.length) {
      return false;
    }
    var at = list.indexOf(currentRow());
    var next = at === -1 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, at + step));
    for (var i = 0; i < list.length; i++) {
      list[i].classList.toggle("is-current", i === next);
    }
    var link = list[next].querySelector("a.ref");
    if (link) {
      link.focus();
      list[next].scrollIntoView({ block: "nearest" });
    }
    return true;
  }

  function openCurrent() {
    var row = currentRow();
    var link = row && row.querySelector("a.ref");
    if (!link) {
      return false;
    }
    window.location.assign(link.href);
    return true;
  }

  // ---- The case page -----------------------------------------------------------------------

  function composerTab(name, field) {
    var tab = document.querySelector('[data-composer-tab="' + name + '"]');
    if (!tab) {
      return false;
    }
    tab.click(); // desk.js shows the panel
    var text = document.querySelector(field);
    if (text) {
      text.focus();
    }
    return true;
  }

  function assignToMe() {
    var actions = document.getElementById("case-actions");
    if (!actions) {
      return false;
    }
    var claim = actions.querySelector('form[action$="/claim/"] button[type=submit]');
    if (claim) {
      claim.click();
      return true;
    }
    var me = document.body.getAttribute("data-user");
    var select = actions.querySelector("select[name=assignee]");
    if (!select || !me || select.value === me) {
      return false;
    }
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === me) {
        select.value = me;
        var form = select.form;
        var button = form.querySelector("button[type=submit]");
        if (form.requestSubmit) {
          form.requestSubmit(button);
        } else if (button) {
          button.click();
        }
        return true;
      }
    }
    return false; // not someone the case may be assigned to
  }

  function escalate() {
    var form = document.querySelector('#case-actions form[action$="/escalate/"]');
    if (!form) {
      return false;
    }
    var details = form.closest("details");
    if (details) {
      details.open = true;
    }
    var reason = form.querySelector("[name=reason]");
    if (reason) {
      reason.focus();
    }
    return true;
  }

  // ---- Everywhere --------------------------------------------------------------------------

  function toQueue() {
    var dialog = help();
    var url = (dialog && dialog.getAttribute("data-queue-url")) || "/desk/";
    window.location.assign(url);
    return true;
  }

  function showHelp() {
    var dialog = help();
    if (!dialog || dialog.open) {
      return false;
    }
    dialog.showModal();
    return true;
  }

  function onKeydown(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    if (typing(event.target)) {
      return;
    }
    var dialog = help();
    if (dialog && dialog.open) {
      return; // the dialog has the keyboard: Esc or its button closes it
    }
    var key = event.key;
    var afterG = pendingG && Date.now() - pendingG < SEQUENCE_MS;
    pendingG = 0;
    var done = false;
    if (afterG && key === "q") {
      done = toQueue();
    } else if (key === "g") {
      pendingG = Date.now();
      done = true;
    } else if (key === "?") {
      done = showHelp();
    } else if (key === "j") {
      done = move(1);
    } else if (key === "k") {
      done = move(-1);
    } else if (key === "o") {
      done = openCurrent();
    } else if (key === "Enter") {
      // A focused link or button answers Enter itself; only a selection without focus needs us.
      var active = document.activeElement;
      done = (!active || active === document.body) && openCurrent();
    } else if (key === "r") {
      done = composerTab("reply", "#reply-text");
    } else if (key === "n") {
      done = composerTab("note", ".note-form textarea");
    } else if (key === "a") {
      done = assignToMe();
    } else if (key === "e") {
      done = escalate();
    }
    if (done) {
      event.preventDefault();
    }
  }

  document.addEventListener("keydown", onKeydown);
})();
