// MQTT.js (the `mqtt` package on npm) against ringmq, for scripts/interop.sh:
//   node interop_mqttjs.js mqtt://127.0.0.1:PORT COUNT
// QoS 0/1/2 round trips at MQTT 3.1.1 and 5.0, a retained message, a will, a persistent
// session that queues QoS 1 messages while offline, and MQTT 5 topic aliases with user
// properties. Prints one PASS or FAIL line per check; exits non-zero on any failure.
//
// Access control (scripts/interop.sh's secured phase, a password file and an ACL):
//   node interop_mqttjs.js --secured mqtt://127.0.0.1:PORT WRITER:PASSWORD READER:PASSWORD
// The ACL gives the writer `readwrite secure/#` and `write private/#`, the reader
// `read secure/#` and `write secure/reader/#`; anonymous clients are refused. At MQTT
// 3.1.1 and 5.0: a wrong password and no user name are refused (CONNACK 5 / 0x87); the
// reader's SUBSCRIBE [private/RUN/x, #] gets [0x80 / 0x87, 1] and `#` delivers only what
// the reader may read; the reader's PUBLISH to `secure/RUN/ro` (read only) at QoS 1 and 2
// is acknowledged and dropped at 3.1.1, refused with PUBACK/PUBREC 0x87 at 5.0.
const mqtt = require('mqtt');
const secured = process.argv[2] === '--secured';
const args = secured ? process.argv.slice(3) : process.argv.slice(2);
const url = args[0];
const N = Number((!secured && args[1]) || 20);
let failures = 0;
// Connects; `onMessage`, when given, is listening before CONNACK (a resumed session's
// queued messages follow it at once). Resolves to [client, connack].
function connect(opts, onMessage) {
  return new Promise((res, rej) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    if (onMessage) c.on('message', onMessage);
    c.once('connect', (ack) => res([c, ack]));
    c.once('error', rej);
  });
}
const label = (v) => (v === 5 ? 'v5' : 'v3.1.1');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Waits (up to 5 s) until `got` holds `n` entries.
async function waitFor(got, n) {
  const deadline = Date.now() + 5000;
  while (got.length < n && Date.now() < deadline) await sleep(20);
}
function report(ok, what) {
  console.log(`${ok ? 'PASS' : 'FAIL'} mqtt.js ${what}`);
  if (!ok) failures++;
}
async function roundTrip(version, qos) {
  const topic = `interop/mqttjs/${process.pid}/${version}/q${qos}`;
  const [sub] = await connect({ protocolVersion: version, clientId: `mqttjs-sub-${version}-${qos}-${process.pid}` });
  const [pub] = await connect({ protocolVersion: version, clientId: `mqttjs-pub-${version}-${qos}-${process.pid}` });
  const got = [];
  sub.on('message', (t, m) => got.push(m.toString()));
  await sub.subscribeAsync(topic, { qos });
  for (let i = 0; i < N; i++) await pub.publishAsync(topic, `m${i}`, { qos });
  await waitFor(got, N);
  const ok = got.length === N && got.every((m, i) => m === `m${i}`);
  report(ok, `${label(version)} qos${qos}: ${got.length}/${N} in order`);
  await sub.endAsync(); await pub.endAsync();
}
async function retained(version) {
  const topic = `interop/mqttjs/${process.pid}/${version}/retained`;
  const [pub] = await connect({ protocolVersion: version });
  await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
  await pub.endAsync();
  const [sub] = await connect({ protocolVersion: version });
  const got = [];
  sub.on('message', (t, m, p) => got.push([m.toString(), p.retain]));
  await sub.subscribeAsync(topic, { qos: 1 });
  await sleep(300);
  const ok = got.length === 1 && got[0][0] === 'kept' && got[0][1] === true;
  report(ok, `${label(version)} retained: ${JSON.stringify(got)}`);
  await sub.publishAsync(topic, '', { qos: 1, retain: true });
  await sub.endAsync();
}
async function will(version) {
  const topic = `interop/mqttjs/${process.pid}/${version}/will`;
  const [sub] = await connect({ protocolVersion: version });
  const got = [];
  sub.on('message', (t, m) => got.push(m.toString()));
  await sub.subscribeAsync(topic, { qos: 1 });
  const [dying] = await connect({ protocolVersion: version, will: { topic, payload: 'gone', qos: 1 } });
  dying.stream.destroy(); // no DISCONNECT: the will must go out
  await waitFor(got, 1);
  const ok = got.length === 1 && got[0] === 'gone';
  report(ok, `${label(version)} will: ${JSON.stringify(got)}`);
  await sub.endAsync();
}
async function offline(version) {
  const topic = `interop/mqttjs/${process.pid}/${version}/offline`;
  const id = `mqttjs-persist-${version}-${process.pid}`;
  const v5 = version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {};
  let [sub] = await connect({ protocolVersion: version, clientId: id, clean: true, ...v5 });
  await sub.endAsync();
  [sub] = await connect({ protocolVersion: version, clientId: id, clean: false, ...v5 });
  await sub.subscribeAsync(topic, { qos: 1 });
  await sub.endAsync();
  const [pub] = await connect({ protocolVersion: version });
  for (let i = 0; i < N; i++) await pub.publishAsync(topic, `o${i}`, { qos: 1 });
  await pub.endAsync();
  const got = [];
  let ack;
  [sub, ack] = await connect({ protocolVersion: version, clientId: id, clean: false, ...v5 },
    (t, m) => got.push(m.toString()));
  await waitFor(got, N);
  const ok = ack.sessionPresent && got.length === N && got.every((m, i) => m === `o${i}`);
  report(ok, `${label(version)} offline queue: session present ${ack.sessionPresent}, ${got.length}/${N}`);
  await sub.endAsync();
}
async function v5Extras() {
  const topic = `interop/mqttjs/${process.pid}/5/alias`;
  const [sub] = await connect({ protocolVersion: 5, properties: { topicAliasMaximum: 10 } });
  const [pub, ack] = await connect({ protocolVersion: 5 });
  const got = [];
  sub.on('message', (t, m, p) => got.push([t, m.toString(), p.properties && p.properties.userProperties]));
  await sub.subscribeAsync(topic, { qos: 1 });
  const max = (ack.properties && ack.properties.topicAliasMaximum) || 0;
  for (let i = 0; i < 5; i++) {
    const props = { userProperties: { k: `v${i}` } };
    if (max > 0) props.topicAlias = 1;
    await pub.publishAsync(i === 0 || max === 0 ? topic : '', `a${i}`, { qos: 1, properties: props });
  }
  await waitFor(got, 5);
  const ok = got.length === 5 && got.every(([t, m, up], i) => t === topic && m === `a${i}` && up && up.k === `v${i}`);
  report(ok, `v5 topic alias (server max ${max}) + user properties: ` +
    (ok ? `${got.length}/5 with their topic and user property` : JSON.stringify(got)));
  await sub.endAsync(); await pub.endAsync();
}
// A CONNECT that must be refused: resolves to the CONNACK's code (the error's code).
function refusedConnect(opts) {
  return new Promise((res) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    const done = (code) => { c.end(true); res(code); };
    c.once('connect', () => done(0));
    c.once('error', (e) => done(e.code));
    c.once('close', () => done('closed without CONNACK'));
  });
}
// One SUBSCRIBE; resolves to the SUBACK's codes, failures included.
function subackCodes(client, filters) {
  return new Promise((res, rej) => {
    client.subscribe(filters, { qos: 1 }, (err, subs, packet) => {
      if (packet && packet.granted) res(packet.granted);
      else rej(err || new Error('no SUBACK'));
    });
  });
}
// One PUBLISH; resolves to its PUBACK/PUBREC code (MQTT.js rejects a failure code).
function ackCode(client, topic, qos) {
  return client.publishAsync(topic, 'payload', { qos }).then(() => 0, (e) => e.code);
}
async function securedChecks(version) {
  const [writerName, writerPw] = args[1].split(/:(.*)/s);
  const [readerName, readerPw] = args[2].split(/:(.*)/s);
  const run = `${process.pid}-${version}`;
  const refused = version === 5 ? 0x87 : 5;
  const refusedSub = version === 5 ? 0x87 : 0x80;
  const v = label(version);
  const bad = await refusedConnect({ protocolVersion: version, username: writerName, password: `${writerPw}-wrong` });
  const anon = await refusedConnect({ protocolVersion: version });
  report(bad === refused && anon === refused,
    `${v} secured: wrong password CONNACK ${bad}, no user name ${anon} (want ${refused})`);

  const [reader] = await connect({ protocolVersion: version, username: readerName, password: readerPw });
  const [writer] = await connect({ protocolVersion: version, username: writerName, password: writerPw });
  const got = [];
  reader.on('message', (t) => got.push(t));
  const granted = await subackCodes(reader, [`private/${run}/x`, '#']);
  report(JSON.stringify(granted) === JSON.stringify([refusedSub, 1]),
    `${v} secured: SUBACK for [private/${run}/x, #] ${JSON.stringify(granted)} (want [${refusedSub}, 1])`);

  // Warm-ups until the reader's `#` sees the writer on every shard.
  const warm = `secure/${run}/warm`;
  const deadline = Date.now() + 10000;
  while (!got.includes(warm) && Date.now() < deadline) {
    await writer.publishAsync(warm, 'warm-up', { qos: 0 });
    await sleep(20);
  }
  const ok = `secure/${run}/ok`;
  await writer.publishAsync(`private/${run}/x`, 'hidden', { qos: 1 });
  await writer.publishAsync(ok, 'shown', { qos: 1 });
  const codes = [await ackCode(reader, `secure/${run}/ro`, 1), await ackCode(reader, `secure/${run}/ro`, 2)];
  const marker = `secure/reader/${run}`;
  await reader.publishAsync(marker, 'marker', { qos: 1 });
  const until = Date.now() + 5000;
  while (!got.includes(marker) && Date.now() < until) await sleep(20);
  await sleep(200);
  const seen = got.filter((t) => t !== warm);
  report(JSON.stringify(seen) === JSON.stringify([ok, marker]),
    `${v} secured: # delivered ${JSON.stringify(seen)} (want only ${ok} and ${marker})`);
  const wantAck = version === 5 ? 0x87 : 0;
  report(codes[0] === wantAck && codes[1] === wantAck,
    `${v} secured: PUBLISH outside the ACL at QoS 1 and 2 acknowledged with ${JSON.stringify(codes)} (want ${wantAck}) and dropped`);
  await reader.endAsync(); await writer.endAsync();
}
(async () => {
  if (secured) {
    for (const v of [4, 5]) await securedChecks(v);
    process.exit(failures ? 1 : 0);
  }
  for (const v of [4, 5]) for (const q of [0, 1, 2]) await roundTrip(v, q);
  for (const v of [4, 5]) { await retained(v); await will(v); await offline(v); }
  await v5Extras();
  process.exit(failures ? 1 : 0);
})().catch((e) => { console.log(`FAIL mqtt.js: ${e && e.stack ? e.stack : e}`); process.exit(2); });
