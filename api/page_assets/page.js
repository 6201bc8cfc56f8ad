// The try-it page: plain DOM, this API only. Strings from the API are set as text,
// never as HTML.
"use strict";

const KEY_STORE = "avatar-prep-key";
const WAIT_SECONDS = 30;
const RATIOS = ["1:1", "4:3", "3:4"];
const $ = (id) => document.getElementById(id);

let chosenFile = null;

function key() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const headers = { "X-API-Key": key(), ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  let body = null;
  if ((response.headers.get("content-type") || "").includes("json")) body = await response.json();
  return { status: response.status, body };
}

function explainError(status, body) {
  const error = (body && body.error) || {};
  if (status === 401) {
    return "That API key was not accepted (" + (error.code || "401") + "). Check it, or make one with " +
      "avatar-prep keys create.";
  }
  if (status === 429) return "Too many requests for this key; try again in a few seconds.";
  return error.message || "The request failed with HTTP " + status + ".";
}

// --- the key -----------------------------------------------------------------

function showKeyState() {
  $("key-status").textContent = key() ? "A key is set for this tab." : "No key yet: paste one above.";
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = $("api-key").value.trim();
  if (!value) return;
  sessionStorage.setItem(KEY_STORE, value);
  $("api-key").value = "";
  const { status, body } = await api("/v1/avatars?limit=1");
  $("key-status").textContent = status === 200 ? "Key accepted." : explainError(status, body);
  $("key-status").className = status === 200 ? "ok" : "bad";
});

// --- tabs --------------------------------------------------------------------

function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (tab.id === "tab-list") loadList();
}

for (const tab of document.querySelectorAll('[role="tab"]')) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const tabs = [...document.querySelectorAll('[role="tab"]')];
    const next = tabs[(tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    selectTab(next);
  });
}

// --- choosing a photo --------------------------------------------------------

function choose(file) {
  chosenFile = file;
  $("url").value = "";
  $("file-name").textContent = file ? "Chosen: " + file.name + " (" + Math.round(file.size / 1024) + " KB)" : "";
}

for (const id of ["file", "camera"]) $(id).addEventListener("change", (e) => choose(e.target.files[0] || null));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
});
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
$("url").addEventListener("input", () => { if ($("url").value) choose(null); });

// --- checking it -------------------------------------------------------------

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = $("url").value.trim();
  if (!key()) { $("progress").textContent = "Paste your API key first."; $("api-key").focus(); return; }
  if (!chosenFile && !url) { $("progress").textContent = "Choose a photo or paste a URL first."; return; }
  $("submit").disabled = true;
  $("progress").textContent = "Checking the photo…";
  $("result").hidden = true;
  try {
    let options;
    if (chosenFile) {
      const form = new FormData();
      form.append("file", chosenFile);
      options = { method: "POST", body: form };
    } else {
      options = { method: "POST", body: JSON.stringify({ image: url }), headers: { "Content-Type": "application/json" } };
    }
    let { status, body } = await api("/v1/avatars/upload-face?wait=" + WAIT_SECONDS, options);
    while (status === 202) {
      $("progress").textContent = "Still working…";
      ({ status, body } = await api("/v1/avatars/" + body.id));
      if (body && (body.status === "queued" || body.status === "processing")) { status = 202; await new Promise((r) => setTimeout(r, 1000)); }
    }
    if (status === 422 && body.error && body.error.avatar_id) {
      await showResult(body.error.avatar_id, null, body.error, url);
    } else if (status === 200 || status === 201) {
      await showResult(body.id, body, body.status === "failed" ? body.error : null, url);
    } else {
      $("progress").textContent = explainError(status, body);
      return;
    }
    $("progress").textContent = "";
  } catch (err) {
    $("progress").textContent = "The API could not be reached: " + err.message;
  } finally {
    $("submit").disabled = false;
  }
});

function limitText(check) {
  if (check.limit === null || check.limit === undefined) return "";
  if (check.bound === "min") return "at least " + check.limit;
  if (check.bound === "max") return "at most " + check.limit;
  return String(check.limit);
}

function resultText(check) {
  if (check.passed) return "passed";
  return check.severity === "warn" ? "warning" : "failed";
}

async function showResult(avatarId, avatar, error, url) {
  const accepted = !error;
  $("verdict").textContent = accepted ? "Accepted: this photo makes a good avatar" : "Rejected: " + error.code;
  $("verdict").className = accepted ? "ok" : "bad";
  $("verdict-message").textContent = accepted
    ? ((avatar.warnings || []).length ? "Accepted, with the warnings below." : "Every check passed.")
    : error.message;

  const warnings = $("warnings");
  warnings.replaceChildren();
  for (const w of (avatar && avatar.warnings) || []) {
    warnings.append(el("p", { class: "warning", text: "Warning (" + w.code + "): " + w.message + " " + (w.hint || "") }));
  }

  $("avatar-id").textContent = avatarId;
  $("id-row").hidden = false;
  $("copy-status").textContent = "";

  const checks = ((avatar && avatar.checks) || (error && error.checks) || []).slice();
  checks.sort((a, b) => Number(a.passed) - Number(b.passed));
  const rows = checks.map((c) => el("tr", { class: c.passed ? "" : (c.severity === "warn" ? "warn" : "fail") },
    el("th", { scope: "row", text: c.name.replace(/_/g, " ") }),
    el("td", { text: resultText(c) }),
    el("td", { text: String(c.value) }),
    el("td", { text: limitText(c) }),
    el("td", { text: c.passed ? "" : c.hint })));
  $("checks").tBodies[0].replaceChildren(...rows);

  const links = await api("/v1/avatars/" + avatarId + "/links");
  const renditions = $("renditions");
  renditions.replaceChildren();
  const images = (links.status === 200 && links.body.images) || {};
  for (const ratio of RATIOS) {
    if (!images[ratio]) continue;
    renditions.append(el("figure", {},
      el("img", { src: images[ratio], alt: "The " + ratio + " rendition of the face", "data-ratio": ratio }),
      el("figcaption", { text: ratio })));
  }
  if (!renditions.children.length) renditions.append(el("p", { text: "None: a rejected photo gets no renditions." }));
  const overlay = links.status === 200 ? links.body.overlay : null;
  $("overlay-figure").hidden = !overlay;
  if (overlay) {
    $("overlay").src = overlay;
    $("overlay").alt = "The photo with the face box, landmarks and crop outlines drawn on it; verdict: " +
      (accepted ? "accepted" : error.code);
  }

  const base = window.location.origin;
  $("curl").textContent = url
    ? "curl -s -H 'X-API-Key: $KEY' -H 'Content-Type: application/json' -d '" +
      JSON.stringify({ image: url }) + "' '" + base + "/v1/avatars/upload-face?wait=10'"
    : "curl -s -H 'X-API-Key: $KEY' -F file=@" + (chosenFile ? chosenFile.name : "photo.jpg") +
      " '" + base + "/v1/avatars/upload-face?wait=10'";

  $("result").hidden = false;
  $("verdict").focus();
}

$("copy-id").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("avatar-id").textContent);
    $("copy-status").textContent = "Copied.";
  } catch {
    $("copy-status").textContent = "Copy failed; select the id and copy it by hand.";
  }
});

// --- the account's avatars ---------------------------------------------------

async function loadList() {
  const list = $("avatars");
  if (!key()) { $("list-status").textContent = "Paste your API key first."; return; }
  $("list-status").textContent = "Loading…";
  const { status, body } = await api("/v1/avatars?limit=50");
  if (status !== 200) { $("list-status").textContent = explainError(status, body); return; }
  list.replaceChildren();
  for (const avatar of body.data) {
    const links = await api("/v1/avatars/" + avatar.id + "/links");
    const thumb = links.status === 200 ? (links.body.images["1:1"] || links.body.overlay) : null;
    const remove = el("button", { type: "button", text: "Delete", "aria-label": "Delete avatar " + avatar.id });
    remove.addEventListener("click", async () => {
      if (!confirm("Delete avatar " + avatar.id + " and its images?")) return;
      const res = await api("/v1/avatars/" + avatar.id, { method: "DELETE" });
      $("list-status").textContent = res.status === 204 ? "Deleted " + avatar.id + "." : explainError(res.status, res.body);
      if (res.status === 204) item.remove();
    });
    const what = avatar.status === "failed" ? "failed: " + avatar.error.code : avatar.status;
    const item = el("li", {},
      thumb ? el("img", { src: thumb, alt: "Avatar " + avatar.id, width: "96", height: "96" }) : el("span", { class: "nothumb", text: "no image" }),
      el("span", {}, el("code", { text: avatar.id }), el("br"), el("span", { class: "status", text: what + " · " + avatar.created_at })),
      remove);
    list.append(item);
  }
  $("list-status").textContent = body.data.length ? body.data.length + " avatar(s)." : "No avatars yet.";
}

$("refresh").addEventListener("click", loadList);
showKeyState();
