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

  // Live: poll /live; update the navigation's counts, and say when new feedback or a spike arrived.
  var newest = null;
  var spikes = null;
  function poll() {
    fetch("/live", {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        document.querySelectorAll("[data-live]").forEach(function (node) {
          var key = node.getAttribute("data-live");
          if (key in data) { node.textContent = String(data[key]); }
        });
        var note = document.querySelector("[data-live-note]");
        if (newest !== null && note && (data.newest_item > newest || data.spikes > spikes)) {
          note.innerHTML = "";
          var text = data.spikes > spikes ? "A theme is spiking. " : "New feedback arrived. ";
          note.appendChild(document.createTextNode(text));
          var link = document.createElement("a");
          link.href = window.location.href;
          link.textContent = "Reload to see it";
          note.appendChild(link);
        }
        if (newest === null) { newest = data.newest_item; spikes = data.spikes; }
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  if (document.querySelector("[data-live]")) {
    poll();
    setInterval(poll, POLL_MS);
  }
})();
