// resc-go console: refreshes the overview's live part and selects a page
// of dead letters. The pages work without it (reload to refresh).
(function () {
  "use strict";

  function refresh(live) {
    var src = live.getAttribute("data-src");
    var every = Math.max(parseInt(live.getAttribute("data-interval"), 10) || 2000, 500);
    var busy = false;
    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html");
          live.replaceChildren.apply(live, Array.from(doc.body.firstChild.childNodes));
          live.removeAttribute("data-stale");
        })
        .catch(function () { live.setAttribute("data-stale", "true"); })
        .finally(function () { busy = false; });
    }
    setInterval(tick, every);
  }

  function selectAll(box) {
    box.addEventListener("change", function () {
      document.querySelectorAll('#dead tbody input[type="checkbox"][name="id"]').forEach(function (c) {
        c.checked = box.checked;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live) { refresh(live); }
    var box = document.getElementById("select-all");
    if (box) { selectAll(box); }
  });
})();
