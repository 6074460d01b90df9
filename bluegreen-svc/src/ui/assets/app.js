// Live updates: fetch the page's <main> every 2 s and swap it in when it changed.
// The server renders everything; this script only polls (no framework, no build step).
"use strict";
(function () {
  var PERIOD_MS = 2000;
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  if (!main) { return; }
  var last = main.innerHTML;
  var busy = false;
  function tick() {
    if (busy) { return; }
    busy = true;
    fetch("/ui/live", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/ui/login"); return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        // A flash message belongs to the action that produced it: keep it for one swap only.
        if (html !== last) { main.innerHTML = html; last = html; }
        if (live) { live.classList.remove("stale"); live.textContent = "live"; }
      })
      .catch(function () {
        if (live) { live.classList.add("stale"); live.textContent = "reconnecting"; }
      })
      .then(function () { busy = false; });
  }
  // Drop ?ok=/?error= from the address so a reload does not repeat the message.
  if (window.location.search) { window.history.replaceState(null, "", "/ui"); }
  window.setInterval(tick, PERIOD_MS);
})();
