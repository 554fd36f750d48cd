// MOUNT POINT (helper "conversations"): the Conversations sidebar, in <aside
// id="conversations">. To fill: list GET /v1/conversations?q= (search box), new /
// rename (PATCH) / delete / export links; opening one emits app.emit("show-turns",
// {turns}) and sets app.askTarget = (fields) => ({path: `/v1/conversations/${id}/ask`,
// body: fields}) so the Ask view asks within it (its `query` event is shown); listen to
// app.on("answer", ...) to refresh the list. Return null while there is nothing to show.

/** @returns {object|null} the view's handle, or null: the sidebar stays hidden. */
export function mount(root, app) {
  void root;
  void app;
  return null;
}
