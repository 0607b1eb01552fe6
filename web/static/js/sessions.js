// The fields of a session (Add Session, and each "Session n" of Create Port Mirroring). The NIC pickers offer
// what the API's candidateNics query says a session may use; they decide nothing themselves.
import { useState, useId } from 'preact/hooks';
import { html, usePoll, useDebounced, nicLabel } from './ui.js';
import { gql } from './api.js';

export const TYPES = [
  { value: 'INGRESS', label: 'Ingress', help: 'Ingress: copies the packets the source NIC receives (traffic entering the VM).' },
  { value: 'EGRESS', label: 'Egress', help: 'Egress: copies the packets the source NIC sends (traffic leaving the VM).' },
  { value: 'BIDIRECTION', label: 'Bidirection', help: 'Bidirection: copies the packets the source NIC receives and sends.' },
];

export const newSession = (n) => ({ key: Math.random().toString(36).slice(2), name: `session-${n}`, type: 'BIDIRECTION', srcVm: '', srcNic: '', dstVm: '', dstNic: '', expires: '', expiresAt: '' });

// EXPIRIES are the choices of the Expires combobox: never, a time from now, or a time the person gives.
export const EXPIRIES = [
  { value: '', label: 'Never' },
  { value: '3600', label: 'In 1 hour' },
  { value: '28800', label: 'In 8 hours' },
  { value: '86400', label: 'In 1 day' },
  { value: '604800', label: 'In 7 days' },
  { value: 'at', label: 'At a given time' },
];

// expiresAt is the session's expiry as the API takes it (RFC 3339, UTC), or null; a given local time that the
// browser cannot read is passed on as written, for the API to refuse with its message.
export function expiresAt(s) {
  if (!s.expires) return null;
  if (s.expires === 'at') {
    const t = new Date(s.expiresAt);
    return isNaN(t) ? s.expiresAt : t.toISOString();
  }
  return new Date(Date.now() + Number(s.expires) * 1000).toISOString();
}

export const sessionInput = (s) => {
  const input = { name: s.name, type: s.type, sourceNicUuid: s.srcNic, destinationNicUuid: s.dstNic };
  const at = expiresAt(s);
  if (at) input.expiresAt = at;
  return input;
};

const VM_PAGE = 100;
const qVms = `query($name: String, $first: Int) { vmInstancePage(first: $first, nameContains: $name) { totalCount items { uuid name host { name } } } }`;

// VmPicker is a VM combobox; with more VMs than one page it gains a filter by name.
function VmPicker({ label, value, onChange, disabled }) {
  const id = useId();
  const [filter, setFilter] = useState('');
  const name = useDebounced(filter, 200);
  const [data, error] = usePoll(() => gql(qVms, { name, first: VM_PAGE }), [name], 0);
  const page = data && data.vmInstancePage;
  const big = page && (page.totalCount > VM_PAGE || filter !== '');
  const filterId = useId();
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${big && html`<input id=${filterId} type="text" class="picker-filter" aria-label=${label + ': filter by name'}
        placeholder="Filter by name…" value=${filter} onInput=${(e) => setFilter(e.currentTarget.value)} />`}
    <select id=${id} value=${value} disabled=${disabled} onChange=${(e) => onChange(e.currentTarget.value)}>
      <option value="">${page ? 'Choose a VM instance' : 'Loading…'}</option>
      ${page && page.items.map((vm) => html`<option value=${vm.uuid}>${vm.name}</option>`)}
      ${value && page && !page.items.some((v) => v.uuid === value) && html`<option value=${value}>(chosen earlier)</option>`}
    </select>
    ${big && page && page.totalCount > page.items.length && html`<p class="hint">${page.items.length} of ${page.totalCount.toLocaleString('en')} shown: filter to find others.</p>`}
    ${error && html`<p class="hint error-text">${error.message}</p>`}
  </div>`;
}

const qCandidates = `query($fn: ID!, $role: NicRole!, $pm: ID, $vm: ID) {
  candidateNics(flowNetworkUuid: $fn, role: $role, portMirrorUuid: $pm, vmInstanceUuid: $vm) {
    nic { uuid mac ip isDefault } eligible rule reason } }`;

const SHORT = {
  DESTINATION_IS_DEFAULT_NIC: "the VM's default NIC",
  NIC_HAS_QOS: 'has QoS set',
  MIRROR_LOOP: 'already the other end of a session',
  CLUSTER_NOT_ATTACHED: "its host's cluster is not attached to the flow network",
};

// readable is the API's reason without what a person does not need here: the session it would be, the uuids.
function readable(reason) {
  const i = reason.indexOf(': ');
  return (i >= 0 ? reason.slice(i + 2) : reason).replace(/ \([0-9a-f]{8}-[0-9a-f-]{27}\)/g, '');
}

// NicPicker is a NIC combobox of one VM: it offers the NICs a session may use; the others are listed beside
// it (and in its description) with the API's reason.
function NicPicker({ label, role, vm, flowNetwork, portMirror, value, onChange, note }) {
  const id = useId();
  const whyId = useId();
  const noteId = useId();
  const [data, error] = usePoll(
    () => (vm && flowNetwork ? gql(qCandidates, { fn: flowNetwork, role, pm: portMirror || null, vm }) : Promise.resolve(null)),
    [vm, flowNetwork, portMirror, role], 0);
  const list = (data && data.candidateNics) || [];
  const refused = list.filter((c) => !c.eligible);
  const why = !flowNetwork ? 'Choose a flow network first.' : !vm ? 'Choose a VM instance first.' : '';
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} value=${value} disabled=${!!why} aria-describedby=${[noteId, refused.length ? whyId : ''].join(' ').trim()}
        onChange=${(e) => onChange(e.currentTarget.value)}>
      <option value="">${why ? '—' : !data ? 'Loading…' : list.some((c) => c.eligible) ? 'Choose a NIC' : 'No NIC of this VM can be used'}</option>
      ${list.filter((c) => c.eligible).map((c) => html`<option value=${c.nic.uuid}>${nicLabel(c.nic)}</option>`)}
    </select>
    <p class="hint" id=${noteId}>${why || note}</p>
    ${refused.length > 0 && html`<div class="hint not-offered" id=${whyId}>Not offered:
      <ul>${refused.map((c) => html`<li>${nicLabel(c.nic)}, ${SHORT[c.rule] || c.rule}: ${readable(c.reason)}</li>`)}</ul>
    </div>`}
    ${error && html`<p class="hint error-text">${error.message}</p>`}
  </div>`;
}

// SessionFields edits one session: value is a newSession() object, onChange gets the next one.
export function SessionFields({ value, onChange, flowNetwork, portMirror }) {
  const set = (k) => (v) => onChange({ ...value, [k]: v, ...(k === 'srcVm' ? { srcNic: '' } : {}), ...(k === 'dstVm' ? { dstNic: '' } : {}) });
  const nameId = useId();
  const typeId = useId();
  const typeHelpId = useId();
  const expId = useId();
  const expAtId = useId();
  const expHelpId = useId();
  return html`<div class="session-fields">
    <div class="field">
      <label for=${nameId}>Name</label>
      <input id=${nameId} type="text" value=${value.name} maxlength="128" onInput=${(e) => set('name')(e.currentTarget.value)} />
    </div>
    <div class="field">
      <label for=${typeId}>Type</label>
      <select id=${typeId} value=${value.type} aria-describedby=${typeHelpId} onChange=${(e) => set('type')(e.currentTarget.value)}>
        ${TYPES.map((t) => html`<option value=${t.value}>${t.label}</option>`)}
      </select>
      <ul class="hint" id=${typeHelpId}>${TYPES.map((t) => html`<li>${t.help}</li>`)}</ul>
    </div>
    <div class="field">
      <label for=${expId}>Expires</label>
      <select id=${expId} value=${value.expires || ''} aria-describedby=${expHelpId} onChange=${(e) => set('expires')(e.currentTarget.value)}>
        ${EXPIRIES.map((x) => html`<option value=${x.value}>${x.label}</option>`)}
      </select>
      <p class="hint" id=${expHelpId}>The controller deletes the session at that time, and its copies stop.</p>
    </div>
    ${value.expires === 'at' && html`<div class="field">
      <label for=${expAtId}>Expiry time</label>
      <input id=${expAtId} type="datetime-local" value=${value.expiresAt} onInput=${(e) => set('expiresAt')(e.currentTarget.value)} />
    </div>`}
    <div class="pair">
      <fieldset>
        <legend>Source port</legend>
        <${VmPicker} label="Source VM Instance" value=${value.srcVm} onChange=${set('srcVm')} />
        <${NicPicker} label="Source NIC" role="SOURCE" vm=${value.srcVm} flowNetwork=${flowNetwork} portMirror=${portMirror}
          value=${value.srcNic} onChange=${set('srcNic')}
          note="The NIC whose packets are copied. To ensure port mirroring works properly, do not set QoS on it." />
      </fieldset>
      <fieldset>
        <legend>Destination port</legend>
        <${VmPicker} label="Destination VM Instance" value=${value.dstVm} onChange=${set('dstVm')} />
        <${NicPicker} label="Destination NIC" role="DESTINATION" vm=${value.dstVm} flowNetwork=${flowNetwork} portMirror=${portMirror}
          value=${value.dstNic} onChange=${set('dstNic')}
          note="Receives the copies for the monitoring device. It cannot be its VM's default network NIC, and must have no QoS set. One destination may serve many sessions." />
      </fieldset>
    </div>
  </div>`;
}
