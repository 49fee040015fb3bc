// rotary try: the page's behaviour. It fetches one person's view of the
// workspace as JSON (messages arrive as finished, escaped HTML rendered by
// the Go side), listens for changes over server-sent events, and turns
// clicks, commands and modal submissions into calls to the console's API,
// which posts them to rotary exactly as Slack would. No build step.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  const ui = {
    people: $('#people'),
    channels: $('#channels'),
    title: $('#channel-title'),
    purpose: $('#channel-purpose'),
    messages: $('#messages'),
    empty: $('#empty'),
    composer: $('#composer'),
    input: $('#composer-input'),
    who: $('#composer-who'),
    status: $('#composer-status'),
    live: $('#live'),
    confirm: $('#confirm'),
    modal: $('#modal'),
    modalForm: $('#modal-form'),
    modalStatus: $('#modal-status'),
  };

  const page = {
    as: null,
    channel: null,
    version: -1,
    data: null,
    known: new Set(),       // message keys already announced
    fresh: true,            // the next render is a first look: announce nothing
    lastSeq: new Map(),     // channel -> highest seq seen while it was open
    collapsed: new Set(),   // threads the person folded
    modalShown: '',         // view id + revision in the dialog
    submitting: false,
    confirmRun: null,
  };

  // --- API ------------------------------------------------------------------

  async function post(path, body) {
    const res = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    let out = {};
    try { out = await res.json(); } catch (_) { /* an empty or non-JSON error */ }
    if (!res.ok) throw new Error(out.error || `${res.status} ${res.statusText}`);
    return out;
  }

  async function refresh() {
    const res = await fetch('/api/state?as=' + encodeURIComponent(page.as));
    if (!res.ok) throw new Error('could not load the state: ' + res.status);
    page.data = await res.json();
    page.version = page.data.version;
    render();
  }

  // schedule coalesces refreshes: one in flight, at most one queued.
  let inFlight = false;
  let queued = false;
  function schedule() {
    if (inFlight) { queued = true; return; }
    inFlight = true;
    refresh()
      .catch((e) => say(e.message))
      .finally(() => {
        inFlight = false;
        if (queued) { queued = false; schedule(); }
      });
  }

  function connect() {
    if (!('EventSource' in window)) {
      setInterval(schedule, 2000);
      return;
    }
    const es = new EventSource('/api/events');
    es.addEventListener('change', (e) => {
      if (ui.status.dataset.lost === '1') say('');
      ui.status.dataset.lost = '';
      if (Number(e.data) !== page.version) schedule();
    });
    es.addEventListener('error', () => {
      ui.status.dataset.lost = '1';
      say('Lost the connection to rotary try; reconnecting…');
    });
  }

  function say(text) { ui.status.textContent = text; }

  // --- rendering ------------------------------------------------------------

  function currentChannel() {
    return (page.data?.channels || []).find((c) => c.id === page.channel);
  }

  function render() {
    const data = page.data;
    if (!data) return;
    renderChannels(data.channels);
    renderMessages(currentChannel());
    renderModal(data.modal);
    page.fresh = false;
  }

  function countAll(msgs, pred) {
    let n = 0;
    for (const m of msgs) {
      if (pred(m)) n++;
      for (const r of m.replies || []) if (pred(r)) n++;
    }
    return n;
  }

  function maxSeq(msgs) {
    let s = 0;
    for (const m of msgs) {
      s = Math.max(s, m.seq);
      for (const r of m.replies || []) s = Math.max(s, r.seq);
    }
    return s;
  }

  function renderChannels(channels) {
    for (const ch of channels) {
      let btn = $(`button.chan[data-channel="${CSS.escape(ch.id)}"]`, ui.channels);
      if (!btn) {
        const li = document.createElement('li');
        btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'chan';
        btn.dataset.channel = ch.id;
        btn.dataset.name = ch.name;
        btn.append('#' + ch.name + ' ');
        const badge = document.createElement('span');
        badge.className = 'unread';
        badge.hidden = true;
        btn.append(badge);
        li.append(btn);
        ui.channels.append(li);
      }
      const badge = $('.unread', btn);
      if (ch.id === page.channel) {
        page.lastSeq.set(ch.id, maxSeq(ch.messages));
        badge.hidden = true;
        continue;
      }
      const since = page.lastSeq.get(ch.id) ?? 0;
      const n = countAll(ch.messages, (m) => m.seq > since);
      badge.hidden = n === 0;
      badge.textContent = n ? `${n} new` : '';
    }
  }

  function messageElement(m, reply) {
    const el = document.createElement('article');
    el.className = 'msg' + (m.ephemeral ? ' ephemeral' : '') + (reply ? ' reply' : '');
    el.id = m.anchor;
    el.tabIndex = -1;
    el.dataset.key = m.key;
    el.dataset.updates = String(m.updates || 0);
    el.setAttribute('aria-labelledby', m.anchor + '-meta');

    const meta = document.createElement('header');
    meta.className = 'msg-meta';
    meta.id = m.anchor + '-meta';
    const author = document.createElement('span');
    author.className = 'msg-author';
    author.textContent = m.author;
    meta.append(author);
    if (m.author === 'rotary') {
      const app = document.createElement('span');
      app.className = 'msg-app';
      app.textContent = 'APP';
      meta.append(' ', app);
    }
    const time = document.createElement('span');
    time.className = 'msg-time';
    time.textContent = m.time;
    meta.append(' ', time);
    if (m.updates) {
      const ed = document.createElement('span');
      ed.className = 'msg-edited';
      ed.textContent = '(edited)';
      meta.append(' ', ed);
    }
    if (m.ephemeral) {
      const only = document.createElement('span');
      only.className = 'msg-only';
      only.textContent = 'Only visible to you';
      meta.append(' ', only);
    }
    el.append(meta);

    if (m.command) {
      const cmd = document.createElement('p');
      cmd.className = 'msg-command';
      const code = document.createElement('code');
      code.textContent = m.command;
      cmd.append('You used ', code);
      el.append(cmd);
    }
    const body = document.createElement('div');
    body.className = 'msg-body';
    body.innerHTML = m.html; // rendered and escaped by the console (Go)
    el.append(body);

    const replies = m.replies || [];
    if (replies.length) {
      const section = document.createElement('section');
      section.className = 'thread';
      const folded = page.collapsed.has(m.key);
      const toggle = document.createElement('button');
      toggle.type = 'button';
      toggle.className = 'thread-toggle';
      toggle.setAttribute('aria-expanded', String(!folded));
      toggle.setAttribute('aria-controls', m.anchor + '-replies');
      toggle.textContent = replies.length === 1 ? '1 reply' : `${replies.length} replies`;
      const list = document.createElement('div');
      list.className = 'replies';
      list.id = m.anchor + '-replies';
      list.setAttribute('role', 'group');
      list.setAttribute('aria-label', 'Thread replies');
      list.hidden = folded;
      for (const r of replies) list.append(messageElement(r, true));
      section.append(toggle, list);
      el.append(section);
    }
    return el;
  }

  function signature(m) {
    return JSON.stringify([m.html, m.updates, m.time, page.collapsed.has(m.key),
      (m.replies || []).map((r) => [r.key, r.html, r.updates])]);
  }

  function focusKey() {
    const a = document.activeElement;
    if (!a || !ui.messages.contains(a)) return null;
    const msg = a.closest('article.msg');
    return {
      msg: msg?.dataset.key,
      action: a.dataset?.actionId,
      value: a.dataset?.value,
      toggle: a.classList.contains('thread-toggle'),
    };
  }

  function restoreFocus(f) {
    if (!f || document.activeElement !== document.body) return;
    const msg = $$('article.msg', ui.messages).find((e) => e.dataset.key === f.msg);
    if (!msg) return;
    let target = null;
    if (f.action) {
      target = $$('button.bk-button', msg).find((b) => b.dataset.actionId === f.action && b.dataset.value === f.value);
    } else if (f.toggle) {
      target = $('.thread-toggle', msg);
    }
    (target || msg).focus();
  }

  function renderMessages(ch) {
    const msgs = ch ? ch.messages : [];
    if (ch) {
      ui.title.textContent = '#' + ch.name;
      ui.purpose.textContent = ch.purpose || '';
    }
    ui.empty.hidden = msgs.length > 0;
    const nearBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 80;
    const focus = focusKey();
    const keep = new Set(msgs.map((m) => m.key));
    for (const el of $$(':scope > article.msg', ui.messages)) {
      if (!keep.has(el.dataset.key)) el.remove();
    }
    let added = false;
    msgs.forEach((m, i) => {
      const sig = signature(m);
      let el = $$(':scope > article.msg', ui.messages).find((e) => e.dataset.key === m.key);
      if (!el || el.dataset.sig !== sig) {
        const fresh = messageElement(m, false);
        fresh.dataset.sig = sig;
        if (el) el.replaceWith(fresh); else added = true;
        el = fresh;
      }
      const at = ui.messages.querySelectorAll(':scope > article.msg')[i];
      if (at !== el) ui.messages.insertBefore(el, at || null);
    });
    restoreFocus(focus);
    announce(ch, msgs);
    if (added && (nearBottom || page.fresh)) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  // announce reads new messages of the open channel to screen readers.
  function announce(ch, msgs) {
    const news = [];
    const visit = (m) => {
      if (!page.known.has(m.key)) {
        page.known.add(m.key);
        if (!page.fresh) news.push(m);
      }
    };
    for (const m of msgs) {
      visit(m);
      (m.replies || []).forEach(visit);
    }
    if (!news.length || !ch) return;
    const text = news.map((m) => {
      const el = document.getElementById(m.anchor);
      const body = el ? ($('.msg-body', el)?.textContent || '') : '';
      return `${m.author}${m.ephemeral ? ' (only you)' : ''}: ${body.trim().slice(0, 160)}`;
    }).join(' · ');
    ui.live.textContent = `New in #${ch.name}: ${text}`;
  }

  // --- channels and people --------------------------------------------------

  function selectChannel(id, focusList) {
    page.channel = id;
    for (const b of $$('button.chan', ui.channels)) {
      if (b.dataset.channel === id) b.setAttribute('aria-current', 'true');
      else b.removeAttribute('aria-current');
    }
    page.fresh = true;
    ui.messages.replaceChildren(ui.empty);
    render();
    if (focusList) ui.messages.focus();
  }

  function selectPerson(id) {
    const radio = $$('input[name="as"]', ui.people).find((r) => r.value === id);
    if (!radio) return;
    radio.checked = true;
    page.as = id;
    ui.who.textContent = radio.dataset.name;
    history.replaceState(null, '', '#as=' + encodeURIComponent(id));
    page.fresh = true;
    page.modalShown = '';
    if (ui.modal.open) ui.modal.close();
    schedule();
  }

  // --- clicks, confirmations ------------------------------------------------

  async function sendAction(btn) {
    const msg = btn.closest('article.msg');
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
    try {
      await post('/api/action', {
        as: page.as,
        key: msg.dataset.key,
        block_id: btn.dataset.blockId,
        action_id: btn.dataset.actionId,
        value: btn.dataset.value,
      });
      say('');
    } catch (e) {
      say(e.message);
    } finally {
      btn.disabled = false;
      btn.removeAttribute('aria-busy');
      schedule();
    }
  }

  function askThen(btn, run) {
    const tpl = btn.dataset.confirm && document.getElementById(btn.dataset.confirm);
    if (!tpl) { run(); return; }
    const part = (cls) => tpl.content.querySelector('.' + cls);
    $('#confirm-title').innerHTML = part('c-title').innerHTML; // rendered by the console
    $('#confirm-text').innerHTML = part('c-text').innerHTML;
    const ok = $('#confirm-ok');
    ok.innerHTML = part('c-ok').innerHTML;
    ok.className = 'bk-button ' + (part('c-style').textContent === 'danger' ? 'bk-danger' : 'bk-primary');
    $('#confirm-deny').innerHTML = part('c-deny').innerHTML;
    page.confirmRun = run;
    ui.confirm.showModal();
    $('#confirm-deny').focus();
  }

  // --- modals ---------------------------------------------------------------

  function renderModal(m) {
    if (!m) {
      if (ui.modal.open && !page.submitting) ui.modal.close();
      page.modalShown = '';
      return;
    }
    const shown = m.view_id + '|' + m.revision;
    if (page.modalShown !== shown) {
      page.modalShown = shown;
      ui.modal.dataset.viewId = m.view_id;
      $('#modal-title').innerHTML = m.title;
      $('#modal-body').innerHTML = m.html;
      $('#modal-close').innerHTML = m.close;
      const submit = $('#modal-submit');
      submit.innerHTML = m.submit;
      submit.hidden = !m.submit;
      ui.modalStatus.textContent = '';
      if (!ui.modal.open) ui.modal.showModal();
      const first = $('.bk-field-input', ui.modal);
      (first || $('#modal-close')).focus();
    }
    showErrors(m.errors || {});
  }

  function showErrors(errors) {
    for (const p of $$('.bk-error', ui.modal)) {
      const msg = errors[p.dataset.errorFor] || '';
      p.textContent = msg; // plain text, as Slack shows it
      const input = $$('.bk-field-input', ui.modal).find((i) => i.dataset.blockId === p.dataset.errorFor);
      if (input) {
        if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
      }
    }
    const firstBad = $('.bk-field-input[aria-invalid="true"]', ui.modal);
    if (firstBad && !ui.modal.contains(document.activeElement)) firstBad.focus();
  }

  function clearInputs() {
    for (const i of $$('.bk-field-input', ui.modal)) i.value = '';
  }

  async function submitModal() {
    const values = {};
    for (const i of $$('.bk-field-input', ui.modal)) {
      (values[i.dataset.blockId] ||= {})[i.dataset.actionId] = i.value;
    }
    page.submitting = true;
    $('#modal-submit').disabled = true;
    try {
      const out = await post('/api/submit', { as: page.as, view_id: ui.modal.dataset.viewId, values });
      if (out.closed) {
        clearInputs(); // a pasted secret does not stay in the page
        page.modalShown = '';
        ui.modal.close();
      } else {
        showErrors(out.errors || {});
        const bad = $('.bk-field-input[aria-invalid="true"]', ui.modal);
        if (bad) bad.focus();
      }
    } catch (e) {
      ui.modalStatus.textContent = e.message;
    } finally {
      page.submitting = false;
      $('#modal-submit').disabled = false;
      schedule();
    }
  }

  async function closeModal() {
    const id = ui.modal.dataset.viewId;
    clearInputs();
    page.modalShown = '';
    ui.modal.close();
    try {
      await post('/api/close', { as: page.as, view_id: id });
    } catch (e) {
      say(e.message);
    }
    schedule();
  }

  // --- wiring ---------------------------------------------------------------

  function init() {
    const want = new URLSearchParams(location.hash.slice(1)).get('as');
    const radios = $$('input[name="as"]', ui.people);
    const start = radios.find((r) => r.value === want) || radios.find((r) => r.checked) || radios[0];
    page.channel = $('button.chan', ui.channels)?.dataset.channel;

    ui.people.addEventListener('change', (e) => {
      if (e.target.name === 'as') selectPerson(e.target.value);
    });
    ui.channels.addEventListener('click', (e) => {
      const b = e.target.closest('button.chan');
      if (b) selectChannel(b.dataset.channel, false);
    });
    ui.messages.addEventListener('click', (e) => {
      const btn = e.target.closest('button.bk-button');
      if (btn && btn.dataset.actionId) {
        askThen(btn, () => sendAction(btn));
        return;
      }
      const toggle = e.target.closest('button.thread-toggle');
      if (toggle) {
        const key = toggle.closest('article.msg').dataset.key;
        if (page.collapsed.has(key)) page.collapsed.delete(key); else page.collapsed.add(key);
        const list = document.getElementById(toggle.getAttribute('aria-controls'));
        const open = !page.collapsed.has(key);
        toggle.setAttribute('aria-expanded', String(open));
        list.hidden = !open;
        return;
      }
      const link = e.target.closest('a[href^="#msg-"]');
      if (link) {
        e.preventDefault();
        const anchor = link.getAttribute('href').slice(1);
        const ch = (page.data?.channels || []).find((c) =>
          c.messages.some((m) => m.anchor === anchor || (m.replies || []).some((r) => r.anchor === anchor)));
        if (ch && ch.id !== page.channel) selectChannel(ch.id, false);
        const target = document.getElementById(anchor);
        if (target) { target.scrollIntoView({ block: 'center' }); target.focus(); }
      }
    });
    ui.composer.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = ui.input.value.trim();
      if (!text) return;
      say('Sending…');
      try {
        await post('/api/command', { as: page.as, channel: page.channel, text });
        ui.input.value = '';
        say('');
      } catch (err) {
        say(err.message);
      }
      schedule();
    });
    $('#confirm-ok').addEventListener('click', () => {
      const run = page.confirmRun;
      page.confirmRun = null;
      ui.confirm.close();
      if (run) run();
    });
    $('#confirm-deny').addEventListener('click', () => {
      page.confirmRun = null;
      ui.confirm.close();
    });
    ui.modalForm.addEventListener('submit', (e) => {
      e.preventDefault();
      submitModal();
    });
    $('#modal-close').addEventListener('click', closeModal);
    ui.modal.addEventListener('cancel', (e) => {
      e.preventDefault();
      closeModal();
    });

    connect();
    selectPerson(start.value);
  }

  init();
})();
