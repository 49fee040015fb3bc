// The benchmark peer: what a team would otherwise build rotary's hot path
// with, a minimal Slack Bolt for JavaScript app. Same endpoints, same two
// handlers (the /rotate slash command and the Approve button), the same
// answers, with Bolt's own HTTP receiver, signature verification on and token
// verification off. State lives in memory only: unlike rotary it writes
// nothing to disk, which favours Bolt in the comparison.
//
// Environment: SLACK_SIGNING_SECRET (required), PORT (default 3000).
// It listens on 127.0.0.1 only.
'use strict';

const { App, LogLevel } = require('@slack/bolt');

const signingSecret = process.env.SLACK_SIGNING_SECRET;
if (!signingSecret) {
  console.error('SLACK_SIGNING_SECRET is not set: export the same signing secret the load generator signs with.');
  process.exit(2);
}
const port = Number(process.env.PORT || 3000);

const app = new App({
  signingSecret,
  token: 'xoxb-bench-unused',
  tokenVerificationEnabled: false,
  // With both IDs given Bolt never calls auth.test (there is no Slack here).
  botId: 'B0BENCH',
  botUserId: 'U0BENCH',
  endpoints: ['/slack/commands', '/slack/interactions'],
  // /healthz tells the benchmark script that the peer is up, as rotary's /readyz does.
  customRoutes: [{ path: '/healthz', method: ['GET'], handler: (req, res) => { res.writeHead(200); res.end('ok\n'); } }],
  logLevel: process.env.BOLT_DEBUG ? LogLevel.DEBUG : LogLevel.ERROR,
});

const APPROVER = 'UAPPROVER';
const requests = new Map(); // id -> {id, target, env, requester, state}
const active = new Map(); // target + '\0' + env -> id
let seq = 0;

// newID: "R-" and 8 characters, unique (zero-padded base 32 of a counter).
function newID() {
  seq += 1;
  return 'R-' + seq.toString(32).toUpperCase().padStart(8, '0');
}

// parse reads "/rotate" text the way rotary's parser does for the verbs the
// benchmark uses: list, status ID, cancel ID, TARGET [--env E] [--reason "..."].
function parse(text) {
  const words = text.match(/"[^"]*"|\S+/g) || [];
  const verb = words[0] || '';
  if (verb === 'list' || verb === 'help') return { verb };
  if (verb === 'status' || verb === 'cancel') return { verb, id: words[1] || '' };
  const cmd = { verb: 'rotate', target: verb, env: 'prod', reason: '' };
  for (let i = 1; i < words.length; i += 1) {
    if (words[i] === '--env') cmd.env = words[++i] || '';
    else if (words[i] === '--reason') cmd.reason = (words[++i] || '').replace(/^"|"$/g, '');
  }
  return cmd;
}

function answer(cmd, user) {
  switch (cmd.verb) {
    case 'help':
      return 'Usage: /rotate TARGET [--env ENV] [--reason "..."] | list | status ID | cancel ID';
    case 'list': {
      const open = [...requests.values()].filter((r) => ['pending', 'approved', 'running'].includes(r.state));
      return open.length === 0 ? 'No open requests.' : `${open.length} open requests`;
    }
    case 'status': {
      const r = requests.get(cmd.id);
      return r ? `*${r.id}* · ${r.target} (${r.env}) · *${r.state}*` : `There is no request ${cmd.id}.`;
    }
    case 'cancel': {
      const r = requests.get(cmd.id);
      if (!r) return `There is no request ${cmd.id}.`;
      if (r.requester !== user) return 'Only the person who opened a request can cancel it.';
      if (r.state !== 'pending') return `${r.id} is already ${r.state}.`;
      r.state = 'cancelled';
      active.delete(r.target + '\0' + r.env);
      return `Cancelled ${r.id} (${r.target} (${r.env})). Nothing was changed.`;
    }
    default: {
      const key = cmd.target + '\0' + cmd.env;
      if (active.has(key)) return `${cmd.target} (${cmd.env}) already has an open request ${active.get(key)}.`;
      const r = { id: newID(), target: cmd.target, env: cmd.env, requester: user, state: 'pending', reason: cmd.reason };
      requests.set(r.id, r);
      active.set(key, r.id);
      return `Opened ${r.id}: rotation of *${r.target} (${r.env})*. \`/rotate cancel ${r.id}\` withdraws it.`;
    }
  }
}

app.command('/rotate', async ({ command, ack }) => {
  await ack({ response_type: 'ephemeral', text: answer(parse(command.text || ''), command.user_id) });
});

app.action('rotary_approve', async ({ ack, body, action }) => {
  await ack();
  const r = requests.get(action.value);
  if (r && r.state === 'pending' && body.user.id !== r.requester && body.user.id === APPROVER) {
    r.state = 'approved';
  }
});

(async () => {
  await app.start({ port, host: '127.0.0.1' });
  console.log(`bolt peer listening on 127.0.0.1:${port}`);
})();
