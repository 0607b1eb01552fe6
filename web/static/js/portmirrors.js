// The Port Mirroring pages: the list with Create Port Mirroring, and a port mirror's own page with every
// operation of the product guide.
import { useState, useId, useEffect } from 'preact/hooks';
import { gql } from './api.js';
import {
  html, usePoll, useDebounced, FormDialog, ConfirmDialog, ActionButton, Pager, FilterBox,
  StatusBadge, StateBadge, Time, ErrorAlert, Loading, nicLabel, statusText, announce,
} from './ui.js';
import { SessionFields, newSession, sessionInput, TYPES } from './sessions.js';

const PAGE = 50;

const qList = `query($first: Int, $offset: Int, $name: String) {
  portMirrorPage(first: $first, offset: $offset, nameContains: $name) {
    totalCount offset hasNextPage
    items { uuid name description state flowNetwork { uuid name }
      sessionCount sessionStatusCounts { active pending error inactive } }
  } }`;

// sessionSummary is a port mirror's sessions counted by status: the list asks for the counts, not the sessions
// (a port mirror may hold a thousand).
function sessionSummary(n, byStatus) {
  if (n === 0) return html`<span class="muted">No session</span>`;
  const counts = { ACTIVE: byStatus.active, PENDING: byStatus.pending, ERROR: byStatus.error, INACTIVE: byStatus.inactive };
  return html`<span class="summary">${n} ${n === 1 ? 'session' : 'sessions'}:
    ${['ACTIVE', 'PENDING', 'ERROR', 'INACTIVE'].filter((s) => counts[s]).map((s) => html` <span class=${'badge status-' + s.toLowerCase()}>${counts[s]} ${statusText(s)}</span>`)}</span>`;
}

export function PortMirrorsPage() {
  const [filter, setFilter] = useState('');
  const name = useDebounced(filter);
  const [offset, setOffset] = useState(0);
  const [creating, setCreating] = useState(false);
  useEffect(() => setOffset(0), [name]);
  const [data, error, reload] = usePoll(() => gql(qList, { first: PAGE, offset, name }), [offset, name], 1000);
  const page = data && data.portMirrorPage;
  return html`<section aria-labelledby="page-title">
    <div class="page-head">
      <h1 id="page-title" tabindex="-1">Port Mirroring</h1>
      <${ActionButton} class="primary" onClick=${() => setCreating(true)}>Create Port Mirroring<//>
    </div>
    <p class="lead">Port mirroring sends a copy of a VM NIC's traffic to another NIC, where a monitoring device analyses it.</p>
    <div class="toolbar">
      <${FilterBox} value=${filter} onInput=${setFilter} />
      ${page && html`<${Pager} label="Pages of port mirrors" offset=${page.offset} count=${page.items.length} total=${page.totalCount}
        hasPrev=${page.offset > 0} hasNext=${page.hasNextPage}
        onPrev=${() => setOffset(Math.max(0, offset - PAGE))} onNext=${() => setOffset(offset + PAGE)} />`}
    </div>
    <${ErrorAlert} error=${error} />
    ${!page ? html`<${Loading} what="port mirrors" />` : html`
    <table aria-label="Port Mirrors">
      <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Flow Network</th><th scope="col">Sessions</th><th scope="col">Description</th></tr></thead>
      <tbody>
        ${page.items.map((pm) => html`<tr key=${pm.uuid}>
          <td><a href=${'#/port-mirrors/' + pm.uuid}>${pm.name}</a></td>
          <td><${StateBadge} state=${pm.state} /></td>
          <td>${pm.flowNetwork.name}</td>
          <td>${sessionSummary(pm.sessionCount, pm.sessionStatusCounts)}</td>
          <td class="desc">${pm.description}</td>
        </tr>`)}
      </tbody>
    </table>
    ${page.items.length === 0 && html`<p class="empty">${name ? `No port mirror's name contains “${name}”.` : 'No port mirror yet: create one with Create Port Mirroring.'}</p>`}`}
    ${creating && html`<${CreatePortMirrorDialog} onClose=${() => setCreating(false)} onCreated=${(pm) => { setCreating(false); reload(); announce(`Port mirror ${pm.name} created.`); }} />`}
  </section>`;
}

const qFlowNetworks = `{ flowNetworks { uuid name cidr clusters { name } portMirror { uuid name } } }`;
const mCreate = `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid name } }`;

function CreatePortMirrorDialog({ onClose, onCreated }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [fn, setFn] = useState('');
  const [enable, setEnable] = useState(false);
  const [addSessions, setAddSessions] = useState(false);
  const [sessions, setSessions] = useState([newSession(1)]);
  const [fns] = usePoll(() => gql(qFlowNetworks), [], 0);
  const ids = { name: useId(), desc: useId(), fn: useId(), fnNote: useId(), enable: useId(), enableNote: useId(), add: useId(), addNote: useId() };
  const submit = async () => {
    if (!fn) throw new Error('Choose a flow network: a port mirror needs one of its own.');
    const input = { name, description: description || null, flowNetworkUuid: fn, enable };
    if (addSessions) input.sessions = sessions.map(sessionInput);
    const d = await gql(mCreate, { in: input });
    onCreated(d.createPortMirror);
  };
  const list = (fns && fns.flowNetworks) || [];
  return html`<${FormDialog} title="Create Port Mirroring" onClose=${onClose} onSubmit=${submit} wide>
    <div class="field">
      <label for=${ids.name}>Name</label>
      <input id=${ids.name} type="text" value=${name} maxlength="128" data-autofocus onInput=${(e) => setName(e.currentTarget.value)} />
    </div>
    <div class="field">
      <label for=${ids.desc}>Description</label>
      <textarea id=${ids.desc} rows="2" maxlength="1024" value=${description} onInput=${(e) => setDescription(e.currentTarget.value)}></textarea>
      <p class="hint">Optional.</p>
    </div>
    <div class="field">
      <label for=${ids.fn}>Flow Network</label>
      <select id=${ids.fn} value=${fn} aria-describedby=${ids.fnNote} onChange=${(e) => setFn(e.currentTarget.value)}>
        <option value="">${fns ? (list.length ? 'Choose a flow network' : 'No flow network: create one on the Flow Networks page') : 'Loading…'}</option>
        ${list.map((f) => html`<option value=${f.uuid} disabled=${!!f.portMirror}>${f.name}${f.portMirror ? ` — occupied by ${f.portMirror.name}` : ''}</option>`)}
      </select>
      <p class="hint" id=${ids.fnNote}>A flow network is dedicated to port mirroring and carries the copies to the remote end; one port
        mirror occupies one flow network. The monitored VM instances must be in a cluster the flow network is attached to.</p>
    </div>
    <div class="field check">
      <input id=${ids.enable} type="checkbox" checked=${enable} aria-describedby=${ids.enableNote} onChange=${(e) => setEnable(e.currentTarget.checked)} />
      <label for=${ids.enable}>Enable immediately after creation</label>
      <p class="hint warn" id=${ids.enableNote}>Enabling port mirroring may occupy physical network bandwidth. Before you select this, make sure the business can still work properly.</p>
    </div>
    <div class="field check">
      <input id=${ids.add} type="checkbox" checked=${addSessions} aria-describedby=${ids.addNote} onChange=${(e) => setAddSessions(e.currentTarget.checked)} />
      <label for=${ids.add}>Add session immediately after creation</label>
      <p class="hint" id=${ids.addNote}>A session copies the traffic of one VM NIC to another; a port mirror may have several.</p>
    </div>
    ${addSessions && html`
      ${sessions.map((s, i) => html`<fieldset class="session-group" key=${s.key}>
        <legend>Session ${i + 1}</legend>
        <${SessionFields} value=${s} flowNetwork=${fn} onChange=${(v) => setSessions(sessions.map((x, j) => (j === i ? v : x)))} />
        ${sessions.length > 1 && html`<button type="button" class="link" onClick=${() => setSessions(sessions.filter((_, j) => j !== i))}>Remove session ${i + 1}</button>`}
      </fieldset>`)}
      <button type="button" onClick=${() => setSessions([...sessions, newSession(sessions.length + 1)])}>Add another session</button>`}
  <//>`;
}

const qMirror = `query($u: ID!) { portMirror(uuid: $u) {
  uuid name description state createdAt updatedAt flowNetwork { uuid name cidr encapsulation }
  sessions { uuid name type status statusReason tunnelKey createdAt expiresAt
    sourceNic { uuid mac ip vmInstance { name } } destinationNic { uuid mac ip vmInstance { name } } }
  audits(first: 50) { id time actor operation success error }
} }`;

const typeLabel = (t) => (TYPES.find((x) => x.value === t) || { label: t }).label;

export function PortMirrorPage({ uuid, navigate }) {
  const [data, error, reload] = usePoll(() => gql(qMirror, { u: uuid }), [uuid], 1000);
  const [dialog, setDialog] = useState(null); // 'edit' | 'delete' | 'add' | { session }
  const [actionError, setActionError] = useState(null);
  const [focusNext, setFocusNext] = useState(''); // after Enable or Disable, the other one (the pressed one is now disabled)
  const [probes, setProbes] = useState({}); // session uuid -> the last probe's result, { running } or { error }
  const pm = data && data.portMirror;
  useEffect(() => {
    const el = focusNext && document.getElementById(focusNext);
    if (el && !el.disabled) {
      el.focus();
      setFocusNext('');
    }
  });
  useEffect(() => { if (pm) document.title = `${pm.name} · Port Mirroring · portmirror`; }, [pm && pm.name]);
  if (data && !pm) {
    return html`<section><h1 id="page-title" tabindex="-1">Port mirror not found</h1>
      <p>No port mirror has the uuid ${uuid}; it may have been deleted. <a href="#/port-mirrors">Back to the list</a>.</p></section>`;
  }
  if (!pm) return html`<section><${ErrorAlert} error=${error} />${!error && html`<${Loading} what="the port mirror" />`}</section>`;
  const act = (op, label, then) => async () => {
    setActionError(null);
    try {
      await gql(`mutation($u: ID!) { ${op}(uuid: $u) { uuid state } }`, { u: uuid });
      announce(`${pm.name}: ${label}.`);
      setFocusNext(then);
      reload();
    } catch (e) {
      setActionError(e);
    }
  };
  const probe = (s) => async () => {
    setProbes((p) => ({ ...p, [s.uuid]: { running: true } }));
    try {
      const r = (await gql(`mutation($u: ID!) { probePortMirrorSession(uuid: $u) { delivered latencyMs path reason } }`, { u: s.uuid })).probePortMirrorSession;
      setProbes((p) => ({ ...p, [s.uuid]: r }));
      announce(r.delivered ? `Probe of ${s.name}: delivered in ${r.latencyMs.toFixed(2)} ms.` : `Probe of ${s.name}: not delivered: ${r.reason}`);
    } catch (e) {
      setProbes((p) => ({ ...p, [s.uuid]: { error: e.message } }));
      announce(`Probe of ${s.name} could not run: ${e.message}`);
    }
  };
  const close = () => setDialog(null);
  const done = (msg) => { setDialog(null); reload(); if (msg) announce(msg); };
  const enabled = pm.state === 'ENABLED';
  return html`<section aria-labelledby="page-title">
    <p class="crumbs"><a href="#/port-mirrors">All port mirrors</a></p>
    <div class="page-head left">
      <h1 id="page-title" tabindex="-1">${pm.name}</h1>
      <${StateBadge} state=${pm.state} />
    </div>
    <dl class="facts">
      <div><dt>Description</dt><dd>${pm.description || html`<span class="muted">None</span>`}</dd></div>
      <div><dt>Flow Network</dt><dd>${pm.flowNetwork.name} <span class="muted">${pm.flowNetwork.cidr}, ${pm.flowNetwork.encapsulation}</span></dd></div>
      <div><dt>State</dt><dd>${enabled ? 'Enabled' : 'Disabled'}</dd></div>
      <div><dt>Created</dt><dd><${Time} value=${pm.createdAt} /></dd></div>
      <div><dt>Updated</dt><dd><${Time} value=${pm.updatedAt} /></dd></div>
    </dl>
    <div class="actions" role="group" aria-label="Operations">
      <${ActionButton} onClick=${() => setDialog('edit')}>Change name and description<//>
      <${ActionButton} id="op-enable" onClick=${act('enablePortMirror', 'enabled', 'op-disable')} why=${enabled ? 'The port mirror is already enabled.' : ''}>Enable<//>
      <${ActionButton} id="op-disable" onClick=${act('disablePortMirror', 'disabled', 'op-enable')} why=${enabled ? '' : 'The port mirror is already disabled.'}>Disable<//>
      <${ActionButton} onClick=${() => setDialog('add')}>Add session<//>
      <${ActionButton} class="danger" onClick=${() => setDialog('delete')}>Delete<//>
    </div>
    <${ErrorAlert} error=${actionError} />
    ${error && html`<p class="hint error-text">Live status paused: ${error.message}</p>`}

    <h2>Sessions</h2>
    <p class="hint">Status follows the controller live (refreshed every second).</p>
    <table aria-label="Sessions">
      <thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Source</th><th scope="col">Destination</th><th scope="col">Status</th><th scope="col">Tunnel key</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Operations</span></th></tr></thead>
      <tbody>
        ${pm.sessions.map((s) => html`<tr key=${s.uuid}>
          <td>${s.name}</td>
          <td>${typeLabel(s.type)}</td>
          <td>${s.sourceNic.vmInstance.name} <span class="muted">${nicLabel(s.sourceNic)}</span></td>
          <td>${s.destinationNic.vmInstance.name} <span class="muted">${nicLabel(s.destinationNic)}</span></td>
          <td><${StatusBadge} status=${s.status} />${s.statusReason && html` <span class="reason">${s.statusReason}</span>`}</td>
          <td>${s.tunnelKey}</td>
          <td>${s.expiresAt ? html`<${Time} value=${s.expiresAt} />` : html`<span class="muted">Never</span>`}</td>
          <td><${ActionButton} class="small" onClick=${() => setDialog({ session: s })}>Delete session<//>${' '}
            <${ActionButton} class="small" onClick=${probe(s)} why=${enabled ? (probes[s.uuid] && probes[s.uuid].running ? 'A probe is running.' : '') : 'The port mirror is disabled.'}
              title="Send a marked frame through the session and catch it before the monitoring VM">Probe session<//>
            ${probes[s.uuid] && html`<${ProbeOutcome} r=${probes[s.uuid]} />`}</td>
        </tr>`)}
      </tbody>
    </table>
    ${pm.sessions.length === 0 && html`<p class="empty">No session: add one with Add session.</p>`}

    <h2>Audit</h2>
    <p class="hint">The operations done on this port mirror and its sessions, newest first. <a href=${'#/audit?object=' + pm.uuid}>The whole trail</a></p>
    <${AuditTable} events=${pm.audits} />

    ${dialog === 'edit' && html`<${EditDialog} pm=${pm} onClose=${close} onDone=${() => done('Name and description changed.')} />`}
    ${dialog === 'add' && html`<${AddSessionDialog} pm=${pm} onClose=${close} onDone=${(s) => done(`Session ${s.name} added.`)} />`}
    ${dialog === 'delete' && html`<${ConfirmDialog} title="Delete port mirror" onClose=${close}
        message=${`Delete the port mirror “${pm.name}” and its ${pm.sessions.length} session(s)? Every flow they installed is removed, and the flow network is freed.`}
        onConfirm=${async () => { await gql(`mutation($u: ID!) { deletePortMirror(uuid: $u) }`, { u: uuid }); announce(`Port mirror ${pm.name} deleted.`); navigate('#/port-mirrors'); }} />`}
    ${dialog && dialog.session && html`<${ConfirmDialog} title="Delete session" onClose=${close}
        message=${`Delete the session “${dialog.session.name}”? Its copies stop and its flows are removed.`}
        onConfirm=${async () => { await gql(`mutation($u: ID!) { deletePortMirrorSession(uuid: $u) }`, { u: dialog.session.uuid }); done(`Session ${dialog.session.name} deleted.`); }} />`}
  </section>`;
}

// ProbeOutcome says what the last probe of a session found.
function ProbeOutcome({ r }) {
  if (r.running) return html` <span class="reason" role="status">Probing…</span>`;
  if (r.error) return html` <span class="reason error-text">Probe could not run: ${r.error}</span>`;
  if (r.delivered) return html` <span class="reason ok-text" title=${r.path.join(' → ')}>Probe delivered in ${r.latencyMs.toFixed(2)} ms</span>`;
  return html` <span class="reason error-text">Probe not delivered: ${r.reason}</span>`;
}

export function AuditTable({ events, withObject = false }) {
  return html`<table aria-label="Audit">
    <thead><tr><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">Operation</th>${withObject && html`<th scope="col">Object</th>`}<th scope="col">Result</th></tr></thead>
    <tbody>
      ${events.map((ev) => html`<tr key=${ev.id}>
        <td><${Time} value=${ev.time} /></td>
        <td>${ev.actor}</td>
        <td><code>${ev.operation}</code></td>
        ${withObject && html`<td>${ev.resourceType}${ev.resourceUuid && html` <span class="muted mono">${ev.resourceUuid}</span>`}</td>`}
        <td>${ev.success ? html`<span class="ok-text">Success</span>` : html`<span class="error-text">Failed</span>: ${ev.error}`}</td>
      </tr>`)}
    </tbody>
  </table>
  ${events.length === 0 && html`<p class="empty">No event.</p>`}`;
}

function EditDialog({ pm, onClose, onDone }) {
  const [name, setName] = useState(pm.name);
  const [description, setDescription] = useState(pm.description || '');
  const nameId = useId();
  const descId = useId();
  const submit = async () => {
    await gql(`mutation($u: ID!, $n: String, $d: String) { updatePortMirror(uuid: $u, name: $n, description: $d) { uuid } }`,
      { u: pm.uuid, n: name, d: description });
    onDone();
  };
  return html`<${FormDialog} title="Change name and description" onClose=${onClose} onSubmit=${submit}>
    <div class="field">
      <label for=${nameId}>Name</label>
      <input id=${nameId} type="text" value=${name} maxlength="128" data-autofocus onInput=${(e) => setName(e.currentTarget.value)} />
    </div>
    <div class="field">
      <label for=${descId}>Description</label>
      <textarea id=${descId} rows="3" maxlength="1024" value=${description} onInput=${(e) => setDescription(e.currentTarget.value)}></textarea>
    </div>
  <//>`;
}

function AddSessionDialog({ pm, onClose, onDone }) {
  const [s, setS] = useState(newSession(pm.sessions.length + 1));
  const submit = async () => {
    const d = await gql(`mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { uuid name } }`,
      { pm: pm.uuid, in: sessionInput(s) });
    onDone(d.addPortMirrorSession);
  };
  return html`<${FormDialog} title="Add Session" onClose=${onClose} onSubmit=${submit} wide>
    <p class="hint">The session sends a copy of the traffic of the source NIC to the destination NIC, over the flow network ${pm.flowNetwork.name}.</p>
    <${SessionFields} value=${s} onChange=${setS} flowNetwork=${pm.flowNetwork.uuid} portMirror=${pm.uuid} />
  <//>`;
}
