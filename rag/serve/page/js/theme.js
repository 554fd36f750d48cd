// Light and dark: the system's preference until the user picks one, then theirs
// (remembered in localStorage; js/theme-boot.js applies it before the first paint).
const KEY = "pocketrag.theme";
const system = window.matchMedia("(prefers-color-scheme: dark)");

function current() {
  const chosen = document.documentElement.dataset.theme;
  return chosen === "light" || chosen === "dark" ? chosen : system.matches ? "dark" : "light";
}

function label(button) {
  const dark = current() === "dark";
  button.textContent = dark ? "Light theme" : "Dark theme";
  button.setAttribute("aria-pressed", String(dark));
}

export function initTheme(button) {
  label(button);
  system.addEventListener("change", () => label(button));
  button.addEventListener("click", () => {
    const next = current() === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try {
      localStorage.setItem(KEY, next);
    } catch (e) { /* not remembered: still applied for this visit */ }
    label(button);
  });
}
