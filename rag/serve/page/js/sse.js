// Server-sent events from a fetch() response body (EventSource cannot POST): the same
// events `rag serve` sends to any client (`text`, `answer`, `error`, `query`, ...).

/**
 * Reads `response` to its end, calling onEvent(name, data) for each event (data parsed
 * as JSON when it is JSON). Resolves when the stream ends; rejects with an AbortError
 * when `signal` aborts the fetch.
 */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
    buffer = done ? "" : blocks.pop();
    for (const block of blocks) dispatch(block, onEvent);
    if (done) return;
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  const text = data.join("\n");
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch (e) { /* not JSON ([DONE]): handed over as text */ }
  onEvent(name, parsed);
}
