// The workspace's only script: keyboard shortcuts and live counts. Every page works without it.
(function () {
  "use strict";
  var POLL_MS = 10000;
  var pendingG = false;

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  // "/" focuses the page's search box; "g" then a letter follows the navigation link with that data-key.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    if (event.key === "/") {
      var box = document.querySelector("[data-search-box]");
      if (box) { event.preventDefault(); box.focus(); }
      return;
    }
    if (pendingG) {
      pendingG = false;
      var link = document.querySelector('nav a[data-key="' + event.key + '"]');
      if (link) { event.preventDefault(); link.click(); }
      return;
    }
    if (event.key === "g") { pendingG = true; setTimeout(function () { pendingG = false; }, 1500); }
  });

  // Live: poll /live; update the navigation's counts, and when new feedback or a spike arrived, refresh
  // the page's live regions (the overview's table, a theme's items) in place, unless the person is
  // working in one (a focused field or a ticked box would be lost), then say so.
  var newest = null;
  var spikes = null;

  function busy(region) {
    return region.contains(document.activeElement) || region.querySelector("input:checked") !== null;
  }

  function refreshRegions(note, text) {
    var regions = document.querySelectorAll("[data-live-region]");
    if (!regions.length) { return; }
    fetch(window.location.href, {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var skipped = false;
        regions.forEach(function (region) {
          var name = region.getAttribute("data-live-region");
          var replacement = fresh.querySelector('[data-live-region="' + name + '"]');
          if (!replacement) { return; }
          if (busy(region)) { skipped = true; return; }
          region.innerHTML = replacement.innerHTML;
        });
        if (note) {
          note.textContent = text + (skipped ? " Reload to see all of it." : " The list below is up to date.");
        }
      })
      .catch(function () { /* the next tick tries again */ });
  }

  function poll() {
    fetch("/live", {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        document.querySelectorAll("[data-live]").forEach(function (node) {
          var key = node.getAttribute("data-live");
          if (key in data) { node.textContent = String(data[key]); }
        });
        if (newest !== null && (data.newest_item > newest || data.spikes > spikes)) {
          var note = document.querySelector("[data-live-note]");
          var text = data.spikes > spikes ? "A theme is spiking." : "New feedback arrived.";
          refreshRegions(note, text);
        }
        newest = data.newest_item;
        spikes = data.spikes;
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  if (document.querySelector("[data-live]")) {
    poll();
    setInterval(poll, POLL_MS);
  }
})();
