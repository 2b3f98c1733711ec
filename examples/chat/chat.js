// The chat page's script: one STOMP connection (the first-party client, /stompede.js) that
// carries the page's CSRF token in CONNECT. Every text from the server is shown with
// textContent, never as HTML.
import { Client, State } from "/stompede.js";

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const me = meta("user");
const isAdmin = meta("roles").split(",").includes("admin");

function add(list, text) {
  const li = document.createElement("li");
  li.textContent = text;
  $(list).appendChild(li);
  li.scrollIntoView({ block: "nearest" });
}

const client = new Client({
  connectHeaders: { "X-CSRF-TOKEN": meta("csrf-token") },
  debug: (line) => console.debug("stompede:", line),
});
client.onStateChange = (state) => {
  $("status").textContent = state === State.CONNECTED ? "Connected" : state;
  $("status").dataset.state = state;
};
client.onStompError = (frame) => add("errors", frame.headers.message);

let room = null;
let roomSubscription = null;
function join(name) {
  roomSubscription?.unsubscribe();
  room = name;
  $("room").textContent = name;
  $("messages").replaceChildren();
  roomSubscription = client.subscribe(`/topic/chat/${name}`, (message) => {
    const line = message.json();
    add("messages", `${line.from}: ${line.text}`);
  });
}

function showPresence(names) {
  $("presence").replaceChildren();
  for (const name of names) add("presence", name === me ? `${name} (you)` : name);
}

client.subscribe("/user/queue/private", (message) => {
  const line = message.json();
  add("private", `${line.from} → you: ${line.text}`);
});
client.subscribe("/user/queue/errors", (message) => add("errors", message.body));
client.subscribe("/app/presence", (message) => showPresence(message.json()));
client.subscribe("/topic/presence", (message) => showPresence(message.json()));
client.subscribe("/topic/announcements", (message) => add("announcements", message.body));
if (isAdmin) {
  $("admin").hidden = false;
  client.subscribe("/topic/admin/events", (message) => add("admin-events", message.body));
}
join("general");
client.activate();

function onSubmit(form, send) {
  $(form).addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
}
onSubmit("join", () => join($("room-name").value.trim()));
onSubmit("say", () => {
  client.publish(`/app/chat/${room}`, $("text").value);
  $("text").value = "";
});
onSubmit("whisper", () => {
  const to = $("to").value.trim();
  const text = $("whisper-text").value;
  client.publish(`/app/private/${encodeURIComponent(to)}`, text);
  add("private", `you → ${to}: ${text}`);
  $("whisper-text").value = "";
});
onSubmit("announce", () => {
  client.publish("/app/admin/announce", $("announce-text").value);
  $("announce-text").value = "";
});

// For tests and the curious: the client and the actions, from the developer console.
window.chat = { client, join, Client };
