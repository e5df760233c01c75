// The web client's scenario in a real browser (Debian's chromium, driven
// by playwright-core): two people sign up through the page and chat,
// ticks turn blue, messages written offline survive a reload and arrive
// once and in order, markup shown as text, a reply, a reaction, an edit,
// deletions for everyone and for me, a block, a group of three, an image,
// settings, and a notification shown by the service worker.
// Usage: node scenario.mjs URL SHOTS_DIR IMAGE.png
import { chromium } from 'playwright-core';

const [url, shots, image] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const step = (s) => console.log(`step: ${s}`);
let failed = null;

async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.on('dialog', (d) => {
    failed = `a dialog opened in ${name}'s page: ${d.message()}`;
    d.dismiss();
  });
  page.on('pageerror', (e) => console.log(`${name} page error: ${e.message}`));
  await page.goto(url);
  await page.getByLabel('Username', { exact: true }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(`${name}-password`);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.locator('#me', { hasText: name }).waitFor();
  return { name, context, page };
}

async function openChatWith(p, other) {
  await p.page.getByLabel('Chat with (username)').fill(other);
  await p.page.getByRole('button', { name: 'Open', exact: true }).click();
  await p.page.locator('#chat-title', { hasText: other }).waitFor();
}

async function say(p, text) {
  await p.page.getByLabel('Message').fill(text);
  await p.page.getByRole('button', { name: 'Send' }).click();
}

async function openConversation(p, title) {
  await p.page.locator('#conversations button', { hasText: title }).first().click();
  await p.page.locator('#chat-title', { hasText: title }).waitFor();
}

const texts = (p) => p.page.locator('#messages li').evaluateAll((lis) =>
  lis.map((li) => li.childNodes[li.childNodes.length - 2]?.textContent ?? ''));

try {
  step('alice and bob sign up through the page');
  const alice = await person('alice');
  const bob = await person('bob');

  step('alice writes to bob; bob sees it');
  await openChatWith(alice, 'bob');
  await say(alice, 'hello bob');
  await alice.page.locator('#messages li.mine .tick.sent, #messages li.mine .tick.delivered').first().waitFor();
  await openConversation(bob, 'alice');
  await bob.page.locator('#messages li', { hasText: 'hello bob' }).waitFor();

  step('bob has the chat open: alice sees blue ticks');
  await alice.page.locator('#messages li.mine .tick.read').first().waitFor();
  await alice.page.screenshot({ path: `${shots}/alice-read.png` });

  step('alice goes offline, writes twice, reloads, comes back');
  await alice.context.setOffline(true);
  await alice.page.locator('#offline').waitFor({ state: 'visible' });
  await say(alice, 'offline one');
  await say(alice, 'offline two');
  await alice.page.locator('#messages li .tick.pending').nth(1).waitFor();
  await alice.page.reload();
  await alice.page.locator('#offline').waitFor({ state: 'visible' });
  await alice.page.locator('#conversations button').first().click();
  await alice.page.locator('#messages li', { hasText: 'offline two' }).locator('.tick.pending').waitFor();
  await alice.page.screenshot({ path: `${shots}/alice-offline.png` });
  await alice.context.setOffline(false);
  await alice.page.locator('#offline').waitFor({ state: 'hidden' });
  await bob.page.locator('#messages li', { hasText: 'offline two' }).waitFor();
  await alice.page.locator('#messages li.mine .tick.pending').waitFor({ state: 'detached' });
  const got = (await texts(bob)).filter((t) => t.startsWith('offline') || t === 'hello bob');
  if (JSON.stringify(got) !== JSON.stringify(['hello bob', 'offline one', 'offline two'])) {
    throw new Error(`bob got ${JSON.stringify(got)}`);
  }

  step('markup in a message is shown as text');
  const markup = '<img src=x onerror=alert(1)>';
  await say(alice, markup);
  await bob.page.locator('#messages li', { hasText: markup }).waitFor();
  if (await bob.page.locator('#messages img[src="x"]').count()) throw new Error('markup became an element');

  step('bob asks; alice replies to his message, quoting it');
  await say(bob, 'which train?');
  const question = alice.page.locator('#messages li', { hasText: 'which train?' });
  await question.locator('summary').click();
  await question.getByRole('button', { name: 'Reply' }).click();
  await alice.page.locator('#mode', { hasText: 'Replying to: which train?' }).waitFor();
  await say(alice, 'the 8:15');
  await bob.page.locator('#messages li', { hasText: 'the 8:15' })
    .locator('blockquote', { hasText: 'which train?' }).waitFor();

  step('bob reacts to the reply; alice sees the reaction');
  const answer = (p, text) => p.page.locator('#messages li', { hasText: text });
  await answer(bob, 'the 8:15').locator('summary').click();
  await answer(bob, 'the 8:15').getByRole('button', { name: 'React 👍' }).click();
  await answer(alice, 'the 8:15').locator('.reactions', { hasText: '👍 1' }).waitFor();

  step('alice edits it; bob sees the new text, marked edited');
  await answer(alice, 'the 8:15').locator('summary').click();
  await answer(alice, 'the 8:15').getByRole('button', { name: 'Edit' }).click();
  await alice.page.locator('#mode', { hasText: 'Editing' }).waitFor();
  await say(alice, 'the 9:15');
  await answer(bob, 'the 9:15').locator('.edited').waitFor();
  await answer(bob, 'the 9:15').locator('.reactions', { hasText: '👍 1' }).waitFor();
  if (await answer(bob, 'the 8:15').count()) throw new Error('the old text is still shown');

  step('alice deletes it for everyone; bob deletes his question for himself');
  await answer(alice, 'the 9:15').locator('summary').click();
  await answer(alice, 'the 9:15').getByRole('button', { name: 'Delete for everyone' }).click();
  await bob.page.locator('#messages li .deleted', { hasText: 'This message was deleted' }).waitFor();
  if (await answer(bob, 'the 9:15').count()) throw new Error('deleted text still shown');
  await answer(bob, 'which train?').first().locator('summary').click();
  await answer(bob, 'which train?').first().getByRole('button', { name: 'Delete for me' }).click();
  await bob.page.locator('#messages li', { hasText: 'which train?' })
    .filter({ hasNot: bob.page.locator('blockquote') }).waitFor({ state: 'detached' });
  await alice.page.locator('#messages li', { hasText: 'which train?' }).first().waitFor();

  step('bob blocks alice: her message is refused; unblocked, the next one arrives');
  await bob.page.getByRole('button', { name: 'Block', exact: true }).click();
  await bob.page.getByRole('button', { name: 'Unblock', exact: true }).waitFor();
  await say(alice, 'are you there?');
  await alice.page.locator('#chat-status', { hasText: 'Not sent' }).waitFor();
  await answer(alice, 'are you there?').locator('.tick.failed').waitFor();
  await bob.page.getByRole('button', { name: 'Unblock', exact: true }).click();
  await bob.page.getByRole('button', { name: 'Block', exact: true }).waitFor();
  await say(alice, 'unblocked now');
  await answer(bob, 'unblocked now').waitFor();
  if (await answer(bob, 'are you there?').count()) throw new Error('a blocked message arrived');

  step('a group of three');
  const carol = await person('carol');
  await alice.page.getByLabel('New group').fill('trio');
  await alice.page.getByLabel('Members (usernames, comma separated)').fill('bob, carol');
  await alice.page.getByRole('button', { name: 'Create' }).click();
  await alice.page.locator('#chat-title', { hasText: 'trio' }).waitFor();
  await say(alice, 'hi both');
  for (const p of [bob, carol]) {
    await openConversation(p, 'trio');
    await p.page.locator('#messages li', { hasText: 'hi both' }).waitFor();
  }
  await alice.page.locator('#messages li.mine .tick.read').first().waitFor();
  await alice.page.locator('#group-panel summary').click();
  await alice.page.locator('#members li').nth(2).waitFor();
  const members = await alice.page.locator('#members li span').allTextContents();
  if (JSON.stringify(members.sort()) !== JSON.stringify(['alice (admin)', 'bob', 'carol'])) {
    throw new Error(`members: ${JSON.stringify(members)}`);
  }

  step('presence in a 1:1 chat header');
  await openConversation(alice, 'bob');
  await alice.page.locator('#chat-status', { hasText: 'online' }).waitFor();

  step('an image, with its thumbnail');
  await alice.page.getByLabel('Attach a file').setInputFiles(image);
  await openConversation(bob, 'alice');
  await bob.page.waitForFunction(() =>
    [...document.querySelectorAll('#messages img')].some((i) => i.complete && i.naturalWidth > 0));
  await bob.page.screenshot({ path: `${shots}/bob-chat.png` });

  step('profile, contacts and privacy');
  await carol.page.locator('#settings summary').click();
  await carol.page.getByLabel('Display name').fill('Carol C.');
  await carol.page.getByRole('button', { name: 'Save profile' }).click();
  await carol.page.locator('#nav-error', { hasText: 'Profile saved.' }).waitFor();
  await carol.page.getByLabel('Add a contact (username)').fill('alice');
  await carol.page.getByRole('button', { name: 'Add contact' }).click();
  await carol.page.locator('#contacts li', { hasText: 'alice' }).waitFor();
  await carol.page.getByLabel("Who sees when I'm online").selectOption('contacts');
  await carol.page.locator('#nav-error', { hasText: 'Privacy saved.' }).waitFor();
  await carol.page.getByLabel('Avatar (an image)').setInputFiles(image);
  await carol.page.locator('#nav-error', { hasText: 'Avatar saved.' }).waitFor();
  await openChatWith(alice, 'carol');
  await alice.page.waitForFunction(() => {
    const i = document.getElementById('chat-avatar');
    return !i.hidden && i.complete && i.naturalWidth > 0;
  });

  step('notifications: the page subscribes, its service worker shows a push');
  await carol.context.grantPermissions(['notifications'], { origin: url });
  await carol.page.getByRole('button', { name: 'Turn notifications on' }).click();
  // Headless chromium has no push service to subscribe through (Chrome's
  // is Google's, off this machine): the page must say so, not hang.
  const status = carol.page.locator('#push-status', { hasText: /Notifications are on|could not subscribe/ });
  await status.waitFor();
  console.log(`push subscription: ${await status.textContent()}`);
  await carol.page.getByLabel('Show who wrote and what in notifications').check();
  await carol.page.locator('#push-status', { hasText: 'Saved.' }).waitFor();
  const cdp = await carol.context.newCDPSession(carol.page);
  const registration = new Promise((resolve) => cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => {
    const r = e.registrations.find((x) => !x.isDeleted && x.scopeURL.startsWith(url));
    if (r) resolve(r.registrationId);
  }));
  await cdp.send('ServiceWorker.enable');
  const push = { title: 'Alice', body: 'see you at 8 (+2 more)', conversation_id: 'd:1:2', count: 3 };
  await cdp.send('ServiceWorker.deliverPushMessage', {
    origin: new URL(url).origin, registrationId: await registration, data: JSON.stringify(push),
  });
  await carol.page.waitForFunction(async (p) => {
    const shown = await (await navigator.serviceWorker.ready).getNotifications();
    return shown.some((n) => n.title === p.title && n.body === p.body && n.tag === p.conversation_id);
  }, push);

  step('a phone-sized window');
  await bob.page.setViewportSize({ width: 390, height: 800 });
  await bob.page.screenshot({ path: `${shots}/bob-phone.png` });
  if (failed) throw new Error(failed);
  console.log('scenario passed');
} catch (e) {
  console.log(`scenario failed: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
