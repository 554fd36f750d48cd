// What can be done to the open conversation: rename it (PATCH), export it (a Markdown
// file, as `rag history export` writes it) and delete it, after a confirmation that is
// part of the page (no browser dialog). Esc cancels a rename or a deletion.
import { h, replace } from "./dom.js";

export class CurrentConversation {
  /** `on`: {renamed(row), deleted(id), failed(message)}, called back by the sidebar. */
  constructor(app, on) {
    this.app = app;
    this.on = on;
    this.conversation = null;
    this.title = h("p", { class: "conv-current-title", id: "conv-current-title" });
    this.renameButton = h("button", { type: "button", class: "small", id: "conv-rename" }, "Rename");
    this.deleteButton = h("button", { type: "button", class: "small", id: "conv-delete" }, "Delete");
    this.exportLink = h("a", { class: "conv-export", id: "conv-export" }, "Export");
    this.buttons = h("div", { class: "conv-buttons" }, this.renameButton, this.exportLink, this.deleteButton);
    this.input = h("input", { type: "text", id: "conv-new-title", name: "title", maxlength: "200", required: true });
    this.renameForm = h(
      "form",
      { class: "conv-rename", hidden: true, "aria-label": "Rename the conversation" },
      h("label", { for: "conv-new-title" }, "New title"),
      this.input,
      h(
        "div",
        { class: "conv-buttons" },
        h("button", { type: "submit", class: "small primary", id: "conv-rename-save" }, "Save"),
        this.cancelButton(() => this.closeRename()),
      ),
    );
    this.question = h("p", { id: "conv-confirm-text" });
    this.confirmButton = h("button", { type: "button", class: "small danger", id: "conv-delete-yes" }, "Delete it");
    this.keepButton = this.cancelButton(() => this.closeConfirm(), "Keep it");
    this.confirm = h(
      "div",
      { class: "conv-confirm", role: "group", "aria-labelledby": "conv-confirm-text", hidden: true },
      this.question,
      h("div", { class: "conv-buttons" }, this.confirmButton, this.keepButton),
    );
    this.root = h(
      "section",
      { class: "conv-current", "aria-labelledby": "conv-current-title", hidden: true },
      this.title,
      this.buttons,
      this.renameForm,
      this.confirm,
    );
    this.wire();
  }

  cancelButton(cancel, label = "Cancel") {
    const button = h("button", { type: "button", class: "small" }, label);
    button.addEventListener("click", cancel);
    return button;
  }

  wire() {
    this.renameButton.addEventListener("click", () => this.openRename());
    this.deleteButton.addEventListener("click", () => this.openConfirm());
    this.confirmButton.addEventListener("click", () => this.remove());
    this.renameForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.rename();
    });
    this.root.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      if (this.renameForm.hidden && this.confirm.hidden) return;
      event.preventDefault();
      event.stopPropagation(); // not the Ask view's Esc (stop the answer)
      this.closeRename();
      this.closeConfirm();
    });
  }

  /** The open conversation {id, title}, or null: nothing to act on, hidden. */
  show(conversation) {
    this.conversation = conversation;
    this.root.hidden = !conversation;
    this.renameForm.hidden = this.confirm.hidden = true;
    this.buttons.hidden = false;
    if (!conversation) return;
    const id = Number(conversation.id);
    this.exportLink.setAttribute("href", `/v1/conversations/${id}/export`);
    this.exportLink.setAttribute("download", `conversation-${id}.md`);
    this.retitle(conversation.title);
  }

  /** The open conversation's title changed (its first question named it), nothing else. */
  retitle(title) {
    if (this.conversation) this.conversation.title = String(title ?? "");
    replace(this.title, h("span", { class: "hint" }, "Open: "), String(title || "Untitled"));
    this.exportLink.setAttribute("aria-label", `Export “${title || "Untitled"}” as Markdown`);
  }

  openRename() {
    this.closeConfirm();
    this.input.value = this.conversation?.title || "";
    this.renameForm.hidden = false;
    this.buttons.hidden = true;
    this.input.focus();
    this.input.select();
  }

  closeRename() {
    if (this.renameForm.hidden) return;
    this.renameForm.hidden = true;
    this.buttons.hidden = false;
    this.renameButton.focus();
  }

  async rename() {
    const id = this.conversation?.id;
    if (id == null) return;
    try {
      const row = await this.app.api.patch(`/v1/conversations/${id}`, { title: this.input.value });
      const waiting = this.renameForm.contains(document.activeElement); // else moved on
      this.on.renamed(row);
      if (waiting) this.renameButton.focus();
    } catch (e) {
      this.on.failed(`Could not rename it: ${e.message}`);
      if (this.renameForm.contains(document.activeElement)) this.input.select();
    }
  }

  openConfirm() {
    this.closeRename();
    const { title } = this.conversation || {};
    this.question.textContent = `Delete “${title || "Untitled"}” and all its turns? This cannot be undone.`;
    this.confirm.hidden = false;
    this.buttons.hidden = true;
    this.keepButton.focus();
  }

  closeConfirm() {
    if (this.confirm.hidden) return;
    this.confirm.hidden = true;
    this.buttons.hidden = false;
    this.deleteButton.focus();
  }

  async remove() {
    const id = this.conversation?.id;
    if (id == null) return;
    try {
      await this.app.api.del(`/v1/conversations/${id}`);
      this.on.deleted(id);
    } catch (e) {
      this.on.failed(`Could not delete it: ${e.message}`);
      this.closeConfirm();
    }
  }
}
