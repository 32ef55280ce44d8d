// Sends a known set of events to a collector with Snowplow's Node.js
// tracker: node send.mjs http://127.0.0.1:9090
import {
  newTracker, buildPageView, buildStructEvent, buildSelfDescribingEvent,
  buildScreenView, buildEcommerceTransaction, buildEcommerceTransactionItem,
} from '@snowplow/node-tracker';

const endpoint = process.argv[2];
if (!endpoint) {
  console.error('usage: node send.mjs <collector url>');
  process.exit(2);
}

const failures = [];
const onRequestFailure = (f) => failures.push(f.status ?? String(f.message));

function tracker(appId, emitter) {
  return newTracker({ namespace: 'e2e', appId, encodeBase64: appId === 'node-get' }, {
    endpoint, bufferSize: 1, retryFailedRequests: false, onRequestFailure, ...emitter,
  });
}

const webPage = {
  schema: 'iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0',
  data: { id: '0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77' },
};

for (const [appId, emitter] of [['node-post', { eventMethod: 'post' }], ['node-get', { eventMethod: 'get' }]]) {
  const t = tracker(appId, emitter);
  t.setUserId('user-42');
  t.setDomainUserId('4b5c6d');
  t.track(buildPageView({ pageUrl: 'https://shop.example.com/basket?x=1', pageTitle: 'Basket', referrer: 'https://search.example.org/' }), [webPage]);
  t.track(buildStructEvent({ category: 'shop', action: 'add-to-basket', label: 'red shoes', property: 'size', value: 19.99 }));
  t.track(buildSelfDescribingEvent({
    event: {
      schema: 'iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1',
      data: { targetUrl: 'https://example.com/next', elementId: 'cta' },
    },
  }), [webPage]);
  t.track(buildScreenView({ name: 'home', id: '1f2e3d4c-5b6a-4789-8abc-def012345678' }));
  t.track(buildEcommerceTransaction({ orderId: 'order-1', total: 42.5, tax: 2.5, shipping: 5, currency: 'EUR' }));
  t.track(buildEcommerceTransactionItem({ orderId: 'order-1', sku: 'sku-1', name: 'Shoe', price: 20, quantity: 2, currency: 'EUR' }));
  await t.flush();
}

// An anonymous tracker: the collector must not record identifiers.
const anon = tracker('node-anon', { eventMethod: 'post', serverAnonymization: true });
anon.track(buildPageView({ pageUrl: 'https://shop.example.com/private' }));
await anon.flush();

console.log(JSON.stringify({ sent: 13, failures }));
