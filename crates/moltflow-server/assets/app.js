// MoltFlow dashboard: progressive enhancement only. Every page works without this file.
// - [data-copy="ID"] buttons copy the text of element ID to the clipboard.
// - forms with [data-confirm="question"] ask before they are sent.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 2000);
  });
});
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
document.querySelectorAll("[data-copy]").forEach(function (b) { b.hidden = false; });
