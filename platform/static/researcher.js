// The dashboard: while a study's analysis runs, show its progress and reload the page when it is done.
(function () {
  "use strict";
  document.querySelectorAll('[data-report="running"]').forEach(function (box) {
    var label = box.querySelector("[data-progress]");
    var timer = setInterval(function () {
      fetch(box.dataset.statusUrl, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (status) {
          if (status.state === "running") {
            label.textContent = label.textContent.replace(/\(\d+%\)/, "(" + status.progress + "%)");
          } else {
            clearInterval(timer);
            window.location.reload();
          }
        })
        .catch(function () { clearInterval(timer); });
    }, 2000);
  });
})();
