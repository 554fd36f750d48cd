// Runs before the first paint (a classic script in <head>): the theme the user chose,
// so a dark-theme reader never sees a white flash. js/theme.js keeps it afterwards.
(function () {
  try {
    var chosen = localStorage.getItem("pocketrag.theme");
    if (chosen === "light" || chosen === "dark") document.documentElement.dataset.theme = chosen;
  } catch (e) { /* storage refused (private mode): follow the system */ }
})();
