/* Caseline desk: the little script every page loads (no inline JS: the CSP forbids it).
 *
 * - Service-promise countdowns tick in the browser from server-given due times:
 *   <time class="countdown" data-due="2025-01-01T10:00:00Z">in 42m</time>
 *   The text format matches cases/templatetags/desk.py countdown_text.
 * - Filter forms marked data-autosubmit submit when a select changes.
 * - One websocket per tab (/ws/desk/, see channels_app/consumers.py). The page says what
 *   it shows (a queue, a case, the board); the server pushes HTML rendered from the same
 *   partials the page uses, and this script puts it in place. Pushes about cases carry a
 *   sequence number (a case event id); the page remembers the newest it was sent, and when
 *   the socket comes back it subscribes again with it, so the server replays what it missed
 *   in order (or, after a long gap, tells it to refetch the region). Replayed pushes the
 *   page had already applied, and pushes older than what a row or region already shows,
 *   are ignored. While the socket is down a banner says so.
 * - The composer: reply / note / call tabs, the channel's identities and character limit,
 *   canned replies, the time a draft began (server time), and "typing" reports that
 *   show colleagues who is writing and take the case's reply lock.
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

  if (typeof document === "undefined") {
    // Loaded outside a browser (the test suite checks the format against the server's).
    module.exports = { countdownText: countdownText };
    return;
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

  function fragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function activate(el) {
    if (window.htmx && el) {
      window.htmx.process(el);
    }
    tick();
  }

  function flash(el) {
    el.classList.add("is-fresh");
    window.setTimeout(function () {
      el.classList.remove("is-fresh");
    }, 2500);
  }

  // ---- Guarded regions: never replace what an agent is filling in -----------------------

  function isDirty(region) {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) {
      var tag = document.activeElement.tagName;
      if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") {
        return true;
      }
    }
    if (region.querySelector("details[open]")) {
      return true;
    }
    var fields = region.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "hidden") {
        continue;
      }
      if (f.tagName === "SELECT") {
        for (var j = 0; j < f.options.length; j++) {
          if (f.options[j].selected !== f.options[j].defaultSelected) {
            return true;
          }
        }
      } else if (f.type === "checkbox" || f.type === "radio") {
        if (f.checked !== f.defaultChecked) {
          return true;
        }
      } else if (f.value !== f.defaultValue) {
        return true;
      }
    }
    return false;
  }

  function replaceRegion(id, html) {
    var current = document.getElementById(id);
    var next = fragment(html);
    if (!current || !next) {
      return;
    }
    if (current.hasAttribute("data-live-guard") && isDirty(current)) {
      // Keep the agent's input; offer the newer version instead.
      current._pending = next;
      if (!current.querySelector(".stale-region")) {
        var note = document.createElement("p");
        note.className = "stale-region";
        var button = document.createElement("button");
        button.type = "button";
        button.className = "linklike";
        button.textContent = "This case changed: show the current options";
        button.setAttribute("data-apply-pending", id);
        note.appendChild(button);
        current.insertBefore(note, current.firstChild);
      }
      return;
    }
    current.replaceWith(next);
    activate(next);
  }

  // ---- Ordered lists: queue rows and timeline entries ---------------------------------------

  function upsertRow(message) {
    var body = document.getElementById("queue-rows");
    if (!body) {
      return;
    }
    var row = fragment(message.html);
    var existing = document.getElementById("case-row-" + message.id);
    if (existing) {
      existing.remove();
    }
    var rows = body.querySelectorAll("tr[data-key]");
    var before = null;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-key") > message.key) {
        before = rows[i];
        break;
      }
    }
    body.insertBefore(row, before);
    activate(row);
    flash(row);
  }

  function removeRow(message) {
    var row = document.getElementById("case-row-" + message.id);
    if (row) {
      row.remove();
    }
  }

  function entryOrder(el) {
    return [Date.parse(el.getAttribute("data-sent-at")) || 0, parseInt(el.id.replace("message-", ""), 10) || 0];
  }

  function upsertEntry(message) {
    var list = document.getElementById("timeline");
    if (!list) {
      return;
    }
    var entry = fragment(message.html);
    var existing = document.getElementById("message-" + message.id);
    if (existing) {
      existing.replaceWith(entry);
      activate(entry);
      return;
    }
    var empty = list.querySelector(".timeline-empty");
    if (empty) {
      empty.remove();
    }
    var mine = entryOrder(entry);
    var before = null;
    var items = list.querySelectorAll("li[data-sent-at]");
    for (var i = 0; i < items.length; i++) {
      var other = entryOrder(items[i]);
      if (other[0] > mine[0] || (other[0] === mine[0] && other[1] > mine[1])) {
        before = items[i];
        break;
      }
    }
    list.insertBefore(entry, before);
    activate(entry);
    flash(entry);
    newsForDraft(entry);
  }

  // ---- Alerts ---------------------------------------------------------------------------------

  function showAlert(message) {
    var box = document.getElementById("alerts");
    if (!box) {
      return;
    }
    var alert = fragment(message.html);
    box.insertBefore(alert, box.firstChild);
    while (box.children.length > 5) {
      box.lastElementChild.remove();
    }
    if (message.level !== "bad") {
      window.setTimeout(function () {
        alert.remove();
      }, 30000);
    }
  }

  // ---- The socket ---------------------------------------------------------------------------

  var socket = null;
  var attempts = 0;
  // The newest sequence number this page was sent (its regions' data-seq at load), null if none.
  var lastSeq = null;
  // The number the page last subscribed with: replayed pushes up to it are already applied.
  var resumedFrom = null;
  // Per row or region, the number of the push shown there.
  var shownSeq = {};
  var offlineTimer = null;
  var pingTimer = null;
  var connectedOnce = false;

  function liveStatus(online) {
    var banner = document.getElementById("live-status");
    var dot = document.getElementById("live-dot");
    window.clearTimeout(offlineTimer);
    if (online) {
      if (banner) {
        banner.hidden = true;
      }
      if (dot) {
        dot.className = "live-dot is-live";
        dot.title = "Live updates: connected";
      }
      return;
    }
    if (dot) {
      dot.className = "live-dot is-down";
      dot.title = "Live updates: reconnecting";
    }
    // A short grace period: leaving the page or a quick reconnect should not flash the banner.
    offlineTimer = window.setTimeout(function () {
      if (banner) {
        banner.hidden = false;
      }
    }, connectedOnce ? 1500 : 4000);
  }

  function send(payload) {
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(payload));
    }
  }

  function regionSeq(region) {
    var n = region ? parseInt(region.getAttribute("data-seq"), 10) : NaN;
    return isNaN(n) ? null : n;
  }

  function pageSeq() {
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i++) {
      var n = regionSeq(regions[i]);
      if (n !== null) {
        return n;
      }
    }
    return null;
  }

  function seqKey(message) {
    if (message.type === "queue.row" || message.type === "queue.remove") {
      return "row:" + message.id;
    }
    if (message.type === "timeline.entry") {
      return "entry:" + message.id;
    }
    if (message.type === "swap") {
      return "swap:" + message.target;
    }
    return null;
  }

  // True when the page already shows what this push brings; else remember its number.
  function alreadyApplied(message) {
    if (typeof message.seq !== "number") {
      return false;
    }
    if (message.replay && resumedFrom !== null && message.seq <= resumedFrom) {
      return true;
    }
    var key = seqKey(message);
    if (key) {
      if (shownSeq[key] !== undefined && message.seq < shownSeq[key]) {
        return true;
      }
      shownSeq[key] = message.seq;
    }
    if (lastSeq === null || message.seq > lastSeq) {
      lastSeq = message.seq;
    }
    return false;
  }

  function subscribe() {
    resumedFrom = lastSeq;
    var replay = lastSeq !== null;
    var queue = document.querySelector("[data-live=queue]");
    if (queue) {
      var rows = [];
      var found = queue.querySelectorAll("#queue-rows tr[id^='case-row-']");
      for (var i = 0; i < found.length; i++) {
        rows.push(parseInt(found[i].id.replace("case-row-", ""), 10));
      }
      var d = queue.dataset;
      send({
        action: "queue",
        view: d.view,
        kind: d.kind,
        priority: d.priority,
        status: d.status,
        department: d.department,
        q: d.q,
        after: d.after,
        until: d.until,
        seq: lastSeq,
        replay: replay,
        rows: rows,
      });
    }
    var kase = document.querySelector("[data-live=case]");
    if (kase) {
      var watch = { action: "watch", case: kase.dataset.case, since: kase.dataset.since };
      if (replay) {
        watch.seq = lastSeq;
        watch.replay = true;
      }
      send(watch);
    }
    var board = document.querySelector("[data-live=board]");
    if (board) {
      send({ action: "board", seq: lastSeq });
    }
  }

  // After a region is refetched, the page's number is the one it was rendered with (or none:
  // then the case page falls back to "since" until a push brings a number).
  function refreshed() {
    lastSeq = pageSeq();
    shownSeq = {};
  }

  function refresh(region) {
    if (!window.htmx) {
      return;
    }
    var done = function () {
      refreshed();
      tick();
      subscribe();
    };
    if (region === "queue") {
      window.htmx
        .ajax("GET", window.location.href, { target: "#queue-live", select: "#queue-live", swap: "outerHTML" })
        .then(done);
    } else if (region === "board") {
      window.htmx
        .ajax("GET", window.location.href, { target: "#board-live", select: "#board-live", swap: "outerHTML" })
        .then(done);
    } else if (region === "case") {
      var kase = document.querySelector("[data-live=case]");
      if (kase) {
        var url = window.location.pathname.replace(/\/?$/, "/") + "live/";
        window.htmx.ajax("GET", url, { target: "#case-live", swap: "none" }).then(done);
      }
    }
  }

  function caseGone() {
    var live = document.querySelector("[data-live=case]");
    if (live) {
      live.removeAttribute("data-live");
    }
    var box = document.getElementById("messages");
    if (box) {
      box.innerHTML = "";
      var p = document.createElement("p");
      p.className = "msg msg-warning";
      p.setAttribute("role", "alert");
      p.textContent = "This case moved where you can no longer work on it. Reload to see what is left to you.";
      box.appendChild(p);
    }
    var forms = document.querySelectorAll("#case-body form");
    for (var i = 0; i < forms.length; i++) {
      var buttons = forms[i].querySelectorAll("button");
      for (var j = 0; j < buttons.length; j++) {
        buttons[j].disabled = true;
      }
    }
  }

  var handlers = {
    hello: subscribe,
    "queue.row": upsertRow,
    "queue.remove": removeRow,
    "timeline.entry": upsertEntry,
    swap: function (m) {
      replaceRegion(m.target, m.html);
    },
    presence: function (m) {
      replaceRegion("presence", m.html);
      replaceRegion("draft-lock", m.lock_html);
    },
    refresh: function (m) {
      refresh(m.region);
    },
    alert: showAlert,
    "case.gone": caseGone,
  };

  function connect() {
    var path = document.body.getAttribute("data-live-socket");
    if (!path || !window.WebSocket) {
      return;
    }
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new window.WebSocket(scheme + window.location.host + path);
    socket.onopen = function () {
      attempts = 0;
      connectedOnce = true;
      liveStatus(true);
      window.clearInterval(pingTimer);
      pingTimer = window.setInterval(function () {
        send({ action: "ping" });
      }, 20000);
    };
    socket.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (alreadyApplied(message)) {
        return;
      }
      var handler = handlers[message.type];
      if (handler) {
        handler(message);
      }
      // Other scripts (comforts.js: notifications, the theme) hear every push too.
      document.dispatchEvent(new window.CustomEvent("caseline:push", { detail: message }));
    };
    socket.onclose = function (event) {
      window.clearInterval(pingTimer);
      socket = null;
      if (event.code === 4401) {
        return; // signed out: nothing to reconnect to
      }
      liveStatus(false);
      attempts += 1;
      var delay = Math.min(15000, 1000 * Math.pow(2, Math.min(attempts - 1, 4)));
      window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
    };
  }

  // ---- The composer ----------------------------------------------------------------------------

  var typingSent = 0;
  var typingIdle = null;

  function replyText() {
    return document.querySelector("[data-reply-text]");
  }

  function showTab(composer, name) {
    composer.setAttribute("data-tab", name);
    var panels = composer.querySelectorAll("[data-panel]");
    for (var i = 0; i < panels.length; i++) {
      panels[i].hidden = panels[i].getAttribute("data-panel") !== name;
    }
    var tabs = composer.querySelectorAll("[data-composer-tab]");
    for (var j = 0; j < tabs.length; j++) {
      tabs[j].setAttribute("aria-selected", tabs[j].getAttribute("data-composer-tab") === name ? "true" : "false");
    }
  }

  function selectedChannel() {
    var select = document.querySelector("[data-reply-channel]");
    return select ? select.options[select.selectedIndex] : null;
  }

  function syncChannel() {
    var option = selectedChannel();
    if (!option) {
      return;
    }
    var kind = option.getAttribute("data-kind");
    var identities = document.querySelector("[data-reply-identity]");
    if (identities) {
      for (var i = 0; i < identities.options.length; i++) {
        var o = identities.options[i];
        var fits = !o.value || o.getAttribute("data-kind") === kind;
        o.hidden = !fits;
        o.disabled = !fits;
        if (!fits && o.selected) {
          identities.value = "";
        }
      }
    }
    var publicRadio = document.querySelector("[data-visibility] input[value=public]");
    var privateRadio = document.querySelector("[data-visibility] input[value=private]");
    if (publicRadio) {
      var allowed = option.getAttribute("data-public") === "yes";
      publicRadio.disabled = !allowed;
      if (!allowed && publicRadio.checked && privateRadio) {
        privateRadio.checked = true;
      }
    }
    var canned = document.querySelector("[data-canned]");
    if (canned) {
      for (var j = 0; j < canned.options.length; j++) {
        var c = canned.options[j];
        var cannedKind = c.getAttribute("data-kind");
        c.hidden = !!(c.value && cannedKind && cannedKind !== kind);
      }
    }
    count();
  }

  function count() {
    var text = replyText();
    var counter = document.querySelector("[data-counter]");
    var option = selectedChannel();
    if (!text || !counter || !option) {
      return;
    }
    var publicRadio = document.querySelector("[data-visibility] input[value=public]");
    var isPublic = publicRadio && publicRadio.checked;
    var limit = parseInt(option.getAttribute("data-limit"), 10);
    var length = Array.from(text.value.trim()).length;
    if (isPublic && limit) {
      counter.textContent = length + " / " + limit;
      counter.classList.toggle("is-over", length > limit);
      counter.classList.toggle("is-near", length <= limit && length > limit - 20);
    } else {
      counter.textContent = length ? length + " characters" : "";
      counter.classList.remove("is-over", "is-near");
    }
  }

  function serverNow(form) {
    var base = Date.parse(form.getAttribute("data-server-now"));
    var loaded = form._loadedAt || Date.now();
    return new Date((isNaN(base) ? Date.now() : base) + (Date.now() - loaded));
  }

  function reportTyping(typing) {
    var text = replyText();
    send({ action: "typing", typing: typing, draft: !!(text && text.value.trim()) });
  }

  function onReplyInput(text) {
    var form = text.form;
    var started = form.querySelector("[data-draft-started]");
    if (started && text._wasEmpty && text.value.trim()) {
      // The draft begins now, in the server's time: what arrived before, the agent has seen.
      started.value = serverNow(form).toISOString();
    }
    var changedDraft = text._wasEmpty !== !text.value.trim();
    text._wasEmpty = !text.value.trim();
    count();
    var now = Date.now();
    // Report at once when the draft starts or empties (the reply lock follows it), else now and then.
    if (changedDraft || now - typingSent > 3000) {
      typingSent = now;
      reportTyping(true);
    }
    window.clearTimeout(typingIdle);
    typingIdle = window.setTimeout(function () {
      typingSent = 0;
      reportTyping(false);
    }, 6000);
  }

  function newsForDraft(entry) {
    var text = replyText();
    if (!text || !text.value.trim()) {
      return;
    }
    var me = document.body.getAttribute("data-user");
    var direction = entry.getAttribute("data-direction");
    var author = entry.getAttribute("data-author") || "";
    if (direction === "in" || (direction === "out" && author !== me)) {
      var note = document.querySelector(".stale-note");
      if (note) {
        note.hidden = false;
      }
    }
  }

  function insertCanned(select) {
    var option = select.options[select.selectedIndex];
    var text = replyText();
    if (!option || !option.value || !text) {
      return;
    }
    var snippet = option.getAttribute("data-text") || "";
    if (!text.value.trim()) {
      text.value = snippet;
    } else {
      var start = text.selectionStart || text.value.length;
      text.value = text.value.slice(0, start) + snippet + text.value.slice(text.selectionEnd || start);
    }
    select.value = "";
    text.focus();
    onReplyInput(text);
  }

  function initComposer(root) {
    var composers = root.querySelectorAll ? root.querySelectorAll(".composer") : [];
    if (root.classList && root.classList.contains("composer")) {
      composers = [root];
    }
    for (var i = 0; i < composers.length; i++) {
      showTab(composers[i], composers[i].getAttribute("data-tab") || "reply");
      var form = composers[i].querySelector(".reply-form");
      if (form) {
        form._loadedAt = Date.now();
      }
      var text = composers[i].querySelector("[data-reply-text]");
      if (text) {
        text._wasEmpty = !text.value.trim();
      }
      syncChannel();
    }
  }

  // ---- Wiring ----------------------------------------------------------------------------------

  function onClick(event) {
    var target = event.target;
    var tab = target.closest && target.closest("[data-composer-tab]");
    if (tab) {
      showTab(tab.closest(".composer"), tab.getAttribute("data-composer-tab"));
      return;
    }
    if (target.hasAttribute && target.hasAttribute("data-dismiss")) {
      var alert = target.closest("[data-alert]");
      if (alert) {
        alert.remove();
      }
      return;
    }
    if (target.hasAttribute && target.hasAttribute("data-apply-pending")) {
      var region = document.getElementById(target.getAttribute("data-apply-pending"));
      if (region && region._pending) {
        var next = region._pending;
        region.replaceWith(next);
        activate(next);
      }
    }
  }

  function onChange(event) {
    var target = event.target;
    autosubmit(event);
    if (target.hasAttribute("data-reply-channel") || (target.name === "visibility" && target.form && target.form.id === "reply-form")) {
      syncChannel();
    } else if (target.hasAttribute("data-canned")) {
      insertCanned(target);
    } else if (target.hasAttribute("data-check-all")) {
      var boxes = target.form.querySelectorAll("input[type=checkbox][name=" + target.getAttribute("data-check-all") + "]");
      for (var i = 0; i < boxes.length; i++) {
        boxes[i].checked = target.checked;
      }
    }
  }

  function onInput(event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-reply-text")) {
      onReplyInput(event.target);
    }
  }

  function start() {
    document.documentElement.classList.add("js");
    tick();
    window.setInterval(tick, 1000);
    document.addEventListener("change", onChange);
    document.addEventListener("input", onInput);
    document.addEventListener("click", onClick);
    initComposer(document);
    if (window.htmx) {
      window.htmx.onLoad(function (el) {
        initComposer(el);
        tick();
      });
      // An action's answer replaces the action panel out of band; keep it if the agent is mid-way.
      var requestOrigin = null;
      document.body.addEventListener("htmx:beforeRequest", function (event) {
        requestOrigin = event.detail && event.detail.elt;
      });
      document.body.addEventListener("htmx:oobBeforeSwap", function (event) {
        var target = event.detail && event.detail.target;
        var own = requestOrigin && target && target.contains(requestOrigin);
        if (target && target.hasAttribute("data-live-guard") && !own && isDirty(target)) {
          event.preventDefault();
        }
      });
    }
    // Swapped-in partials carry their own data-due attributes: show them right away.
    document.body.addEventListener("htmx:afterSettle", tick);
    lastSeq = pageSeq();
    connect();
  }

  window.Caseline = { countdownText: countdownText, tick: tick };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
