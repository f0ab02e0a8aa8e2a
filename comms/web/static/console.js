// The console's live refresh: every few seconds the page fetches itself and swaps #live in place.
// Times marked data-local are also shown in the viewer's own zone. No framework, no build step.
(function () {
  "use strict";

  function localTimes(root) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    root.querySelectorAll("[data-viewer-zone]").forEach(function (cell) { cell.textContent = zone; });
    root.querySelectorAll("time[data-local]").forEach(function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (!isNaN(when)) {
        node.textContent = when.toLocaleString(undefined, {
          weekday: "short", day: "numeric", month: "short", year: "numeric",
          hour: "2-digit", minute: "2-digit", timeZoneName: "short"
        });
      }
    });
  }

  function refresh(live, seconds) {
    window.setTimeout(function () {
      fetch(window.location.href, { credentials: "same-origin", headers: { "X-Comms-Refresh": "1" } })
        .then(function (answer) { return answer.ok ? answer.text() : null; })
        .then(function (html) {
          if (html) {
            var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
            if (fresh) {
              live.replaceWith(fresh);
              live = fresh;
              localTimes(live);
            }
          }
        })
        .catch(function () { /* the server is restarting: try again next time */ })
        .finally(function () { refresh(live, seconds); });
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var live = document.getElementById("live");
    if (live && live.dataset.refresh) {
      refresh(live, Number(live.dataset.refresh) || 5);
    }
  });
})();
