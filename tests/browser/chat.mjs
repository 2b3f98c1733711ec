// The chat example (examples/chat) with three users in three browser contexts: ada (an
// administrator), bob and carol. Each page's WebSocket frames are recorded, so what a user
// must not receive is checked on the wire, not only on screen.

import { URL_UNDER_TEST, assert, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

const url = (path) => new URL(path, URL_UNDER_TEST).href;
const origin = new URL(URL_UNDER_TEST);

/** A signed-in, connected chat page of `user`, recording the text of every frame it receives. */
async function signedIn(browser, user) {
  const page = await openPage(browser, "/login");
  page.wire = [];
  page.on("websocket", (ws) => ws.on("framereceived", (frame) => page.wire.push(String(frame.payload))));
  await page.fill("#username", user);
  await page.fill("#password", `${user}-password`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(url("/"));
  await page.waitForSelector('#status[data-state="connected"]');
  return page;
}

const lines = (page, list) => page.locator(`#${list} li`).allTextContents();

async function waitForLine(page, list, text) {
  await page.waitForFunction(
    ([list, text]) => [...document.querySelectorAll(`#${list} li`)].some((li) => li.textContent === text),
    [list, text],
  );
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.getByRole("button", { name: "Send", exact: true }).click();
}

const browser = await launch(["--disable-features=LocalNetworkAccessChecks"]);
try {
  const ada = await signedIn(browser, "ada");
  const bob = await signedIn(browser, "bob");
  const carol = await signedIn(browser, "carol");

  await check("presence lists the three users", async () => {
    for (const page of [ada, bob, carol]) {
      await page.waitForFunction(() => document.querySelectorAll("#presence li").length === 3);
    }
    assertEqual(await lines(bob, "presence"), ["ada", "bob (you)", "carol"], "bob's presence list");
  });

  await check("two users chat in a room", async () => {
    await say(ada, "hello from ada");
    await say(bob, "hello from bob");
    for (const page of [ada, bob, carol]) {
      await waitForLine(page, "messages", "bob: hello from bob");
      assertEqual(await lines(page, "messages"), ["ada: hello from ada", "bob: hello from bob"], "the room, in order");
    }
  });

  await check("a private message reaches its addressee only (on the wire)", async () => {
    await ada.fill("#to", "bob");
    await ada.fill("#whisper-text", "the secret is 4217");
    await ada.getByRole("button", { name: "Send privately" }).click();
    await waitForLine(bob, "private", "ada → you: the secret is 4217");
    // Ada's next message goes through the same session after the private one: once it has
    // reached everyone, so would have the private message.
    await say(ada, "after the secret");
    for (const page of [ada, bob, carol]) await waitForLine(page, "messages", "ada: after the secret");
    const carried = (page) => page.wire.filter((f) => f.includes("the secret is 4217"));
    assertEqual(carried(carol), [], "frames carol received that carry the private message");
    assertEqual(carried(ada), [], "frames ada received that carry her own private message");
    assertEqual(carried(bob).length, 1, "frames bob received that carry it");
    assert(carried(bob)[0].includes("destination:/user/queue/private\n"), `bob's frame: ${carried(bob)[0]}`);
    assertEqual(await lines(carol, "private"), [], "carol's private messages");
  });

  await check("errors go back to their sender only", async () => {
    await ada.fill("#to", "nobody");
    await ada.fill("#whisper-text", "hello?");
    await ada.getByRole("button", { name: "Send privately" }).click();
    await waitForLine(ada, "errors", "nobody is not online: the message was not delivered");
    await say(ada, "after the error");
    for (const page of [bob, carol]) {
      await waitForLine(page, "messages", "ada: after the error");
      assertEqual(await lines(page, "errors"), [], "errors shown to others");
    }
  });

  await check("only the administrator gets the admin topic", async () => {
    assertEqual(await ada.isVisible("#admin"), true, "ada's admin section");
    assertEqual(await bob.isVisible("#admin"), false, "bob's admin section");
    await ada.waitForFunction(() =>
      [...document.querySelectorAll("#admin-events li")].some((li) => li.textContent.startsWith("carol connected")),
    );
    // Bob tries anyway, on a connection of his own: refused, and that connection is closed.
    const refusal = await bob.evaluate(
      () =>
        new Promise((resolve) => {
          const token = document.querySelector('meta[name="csrf-token"]').content;
          const probe = new window.chat.Client({ reconnectDelay: 0, connectHeaders: { "X-CSRF-TOKEN": token } });
          probe.subscribe("/topic/admin/events", () => resolve("received an admin event"));
          probe.onStompError = (frame) => resolve(frame.headers.message);
          probe.activate();
        }),
    );
    assertEqual(refusal, "access denied: SUBSCRIBE to /topic/admin/events", "bob's subscription");
    // The administrator's announcement reaches everyone.
    await ada.fill("#announce-text", "maintenance at noon");
    await ada.getByRole("button", { name: "Announce" }).click();
    for (const page of [ada, bob, carol]) await waitForLine(page, "announcements", "ada: maintenance at noon");
  });

  await check("a page without a login cannot connect", async () => {
    const page = await openPage(browser, "/", { allowErrors: /status of 401|WebSocket/ });
    assertEqual(page.url(), url("/login"), "the chat page redirects to the login form");
    const outcome = await page.evaluate(
      (ws) =>
        new Promise((resolve) => {
          const socket = new WebSocket(ws, ["v12.stomp"]);
          socket.onopen = () => resolve("opened");
          socket.onclose = () => resolve("refused");
        }),
      url("/ws").replace(/^http/, "ws"),
    );
    assertEqual(outcome, "refused", "a WebSocket to /ws without a session");
    assertEqual((await page.request.get(url("/ws"))).status(), 401, "the endpoint's answer");
    await page.context().close();
  });

  await check("a page of another origin is refused, cookie or not", async () => {
    // A foreign page opened in ada's browser (her session cookie exists there).
    const page = await ada.context().newPage();
    const ws = url("/ws").replace(/^http/, "ws");
    await page.route("http://evil.test/", (route) =>
      route.fulfill({
        contentType: "text/html",
        body: `<script>
          const socket = new WebSocket(${JSON.stringify(ws)}, ["v12.stomp"]);
          window.outcome = new Promise((resolve) => {
            socket.onopen = () => resolve("opened");
            socket.onclose = () => resolve("refused");
          });
        </script>`,
      }),
    );
    page.on("console", () => {});
    await page.goto("http://evil.test/");
    assertEqual(await page.evaluate(() => window.outcome), "refused", "the foreign page's WebSocket");
    await page.close();
  });

  await check("logging out closes the user's session and updates presence", async () => {
    await carol.getByRole("button", { name: "Log out" }).click();
    await carol.waitForURL(url("/login?logout"));
    for (const page of [ada, bob]) {
      await page.waitForFunction(() => document.querySelectorAll("#presence li").length === 2);
    }
    assertEqual(await lines(ada, "presence"), ["ada (you)", "bob"], "ada's presence list");
  });

  for (const page of [ada, bob]) assertEqual(page.problems, [], "page problems");
  await ada.screenshot({ path: `${process.env.STOMPEDE_ARTIFACTS ?? "../../target/browser"}/chat.png`, fullPage: true });
} finally {
  await browser.close();
}
finish();
