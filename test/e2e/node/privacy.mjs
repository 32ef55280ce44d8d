// Sends events carrying known identifying values with Snowplow's Node.js
// tracker, for the pseudonymization test:
// node privacy.mjs <collector url> <user id> <domain user id> <page url>
import { newTracker, buildPageView, buildStructEvent } from '@snowplow/node-tracker';

const [endpoint, userId, duid, pageUrl] = process.argv.slice(2);
if (!pageUrl) {
  console.error('usage: node privacy.mjs <collector url> <user id> <domain user id> <page url>');
  process.exit(2);
}
const failures = [];
let sent = 0;
for (const eventMethod of ['post', 'get']) {
  const t = newTracker({ namespace: 'privacy', appId: 'node-privacy', encodeBase64: eventMethod === 'get' }, {
    endpoint, eventMethod, bufferSize: 1, retryFailedRequests: false,
    onRequestFailure: (f) => failures.push(f.status ?? String(f.message)),
  });
  t.setUserId(userId);
  t.setDomainUserId(duid);
  t.track(buildPageView({ pageUrl, pageTitle: 'Account of ' + userId }));
  t.track(buildStructEvent({ category: 'account', action: 'login', label: userId }));
  sent += 2;
  await t.flush();
}
console.log(JSON.stringify({ sent, failures }));
