// Page behaviour for every page. The Content-Security-Policy allows scripts only from this
// origin, so nothing runs inline: templates say what they want with data-* attributes.
//   data-confirm="question"  on a form (asked on submit) or a button (asked on click)
//   data-width="42.5"        on an element: its width in percent (e.g. a progress bar)
//   textarea#markdown[data-preview-url]: the notes editor's live preview
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    // A button's own question was asked on click; the form's is asked here.
    if (submitter && submitter.hasAttribute("data-confirm")) return;
    if (form.hasAttribute && form.hasAttribute("data-confirm") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  }, true);

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-confirm], a[data-confirm]") : null;
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  function widths() {
    document.querySelectorAll("[data-width]").forEach(function (el) {
      var value = parseFloat(el.getAttribute("data-width"));
      if (!isNaN(value)) el.style.width = Math.max(0, Math.min(100, value)) + "%";
    });
  }

  // Live preview: re-render (server-side, sanitized) a moment after typing stops.
  function notesPreview() {
    var area = document.querySelector("textarea#markdown[data-preview-url]");
    if (!area) return;
    var preview = document.getElementById("preview"), diff = document.getElementById("diff");
    var status = document.getElementById("preview-status");
    var meta = document.querySelector("meta[name=csrf-token]");
    var token = meta ? meta.content : "";
    var timer = null, seq = 0;
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 400);
    });
    function refresh() {
      var mine = ++seq;
      status.textContent = "updating preview…";
      fetch(area.dataset.previewUrl, {
        method: "POST",
        headers: {"Content-Type": "application/json", "X-CSRFToken": token},
        body: JSON.stringify({markdown: area.value}),
        credentials: "same-origin"
      }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (data) {
        if (mine !== seq) return;
        preview.innerHTML = data.html;  // sanitized by the server (nh3)
        diff.innerHTML = data.diff;     // rendered by Jinja, escaped
        status.textContent = "preview updated · not saved yet";
      }).catch(function () {
        if (mine === seq) status.textContent = "preview unavailable; use the Preview button";
      });
    }
  }

  function ready() {
    widths();
    notesPreview();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
