// Sign-in to a server started with a token: asked once, traded at POST /v1/session for
// an HttpOnly cookie. The token is never stored by the page.
import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";

/** {token_required, signed_in} from the server. */
export async function sessionState(app) {
  return app.api.get("/v1/session");
}

/** Shows the sign-in form in `root` and resolves once the server took the token. */
export function askForToken(root, app) {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", role: "alert" });
    const input = h("input", {
      id: "token",
      name: "token",
      type: "password",
      autocomplete: "current-password",
      required: true,
      spellcheck: "false",
    });
    const button = h("button", { type: "submit", id: "signin-submit", class: "primary" }, "Sign in");
    const form = h(
      "form",
      { class: "panel signin-form", "aria-labelledby": "signin-title" },
      h("h2", { id: "signin-title" }, "Sign in to this server"),
      h(
        "p",
        { class: "hint" },
        "It was started with a token (--token or RAG_SERVE_TOKEN). Give it once: the " +
          "browser then keeps a session cookie that scripts cannot read.",
      ),
      h("label", { for: "token" }, "Token"),
      input,
      button,
      error,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      error.textContent = "";
      try {
        await app.api.post("/v1/session", { token: input.value });
        input.value = "";
        root.hidden = true;
        root.replaceChildren();
        resolve();
      } catch (e) {
        error.textContent =
          e instanceof ApiError && e.status === 401
            ? "That is not this server's token."
            : `Could not sign in: ${e.message}`;
        input.select();
      } finally {
        button.disabled = false;
      }
    });
    replace(root, form);
    root.hidden = false;
    input.focus();
  });
}

export async function signOut(app) {
  await app.api.del("/v1/session");
}
