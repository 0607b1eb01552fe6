// The pages around port mirroring: Flow Networks, Hosts, VM Instances and the Audit trail.
import { useState, useId, useEffect } from 'preact/hooks';
import { gql } from './api.js';
import {
  html, usePoll, useDebounced, FormDialog, ConfirmDialog, ActionButton, Pager, FilterBox, Time, ErrorAlert,
  Loading, announce,
} from './ui.js';
import { AuditTable } from './portmirrors.js';

const PAGE = 50;

// usePaged is the state of a paged, name-filtered list.
function usePaged() {
  const [filter, setFilter] = useState('');
  const name = useDebounced(filter);
  const [offset, setOffset] = useState(0);
  useEffect(() => setOffset(0), [name]);
  return { filter, setFilter, name, offset, setOffset };
}

function PagedToolbar({ p, page, label }) {
  return html`<div class="toolbar">
    <${FilterBox} value=${p.filter} onInput=${p.setFilter} />
    ${page && html`<${Pager} label=${label} offset=${page.offset} count=${page.items.length} total=${page.totalCount}
      hasPrev=${page.offset > 0} hasNext=${page.hasNextPage}
      onPrev=${() => p.setOffset(Math.max(0, p.offset - PAGE))} onNext=${() => p.setOffset(p.offset + PAGE)} />`}
  </div>`;
}

const qFlowNetworks = `query($first: Int, $offset: Int, $name: String) {
  flowNetworkPage(first: $first, offset: $offset, nameContains: $name) { totalCount offset hasNextPage
    items { uuid name description cidr encapsulation clusters { uuid name } endpoints { ip } portMirror { uuid name } } }
  clusters { uuid name } }`;

export function FlowNetworksPage() {
  const p = usePaged();
  const [data, error, reload] = usePoll(() => gql(qFlowNetworks, { first: PAGE, offset: p.offset, name: p.name }), [p.offset, p.name], 2000);
  const [dialog, setDialog] = useState(null);
  const [actionError, setActionError] = useState(null);
  const page = data && data.flowNetworkPage;
  const clusters = (data && data.clusters) || [];
  const done = (msg) => { setDialog(null); reload(); announce(msg); };
  return html`<section aria-labelledby="page-title">
    <div class="page-head">
      <h1 id="page-title" tabindex="-1">Flow Networks</h1>
      <${ActionButton} class="primary" onClick=${() => setDialog({ create: true })}>Create Flow Network<//>
    </div>
    <p class="lead">A flow network is dedicated to port mirroring: it carries the copies between hosts. A port mirror needs one of its own, attached to the clusters of the VMs it watches.</p>
    <${PagedToolbar} p=${p} page=${page} label="Pages of flow networks" />
    <${ErrorAlert} error=${error || actionError} />
    ${!page ? html`<${Loading} what="flow networks" />` : html`
    <table aria-label="Flow Networks">
      <thead><tr><th scope="col">Name</th><th scope="col">CIDR</th><th scope="col">Encapsulation</th><th scope="col">Clusters</th><th scope="col">Endpoints</th><th scope="col">Port Mirror</th><th scope="col"><span class="sr-only">Operations</span></th></tr></thead>
      <tbody>${page.items.map((f) => html`<tr key=${f.uuid}>
        <td>${f.name}${f.description && html`<div class="muted">${f.description}</div>`}</td>
        <td class="mono">${f.cidr}</td>
        <td>${f.encapsulation}</td>
        <td>${f.clusters.length === 0 ? html`<span class="muted">Not attached</span>` : html`<ul class="plain">${f.clusters.map((c) => html`<li>${c.name}
          <${ActionButton} class="small" aria-label=${`Detach ${f.name} from ${c.name}`} onClick=${async () => {
            setActionError(null);
            try { await gql(`mutation($f: ID!, $c: ID!) { detachFlowNetworkFromCluster(flowNetworkUuid: $f, clusterUuid: $c) { uuid } }`, { f: f.uuid, c: c.uuid }); done(`${f.name} detached from ${c.name}.`); } catch (e) { setActionError(e); }
          }}>Detach<//></li>`)}</ul>`}</td>
        <td>${f.endpoints.length}</td>
        <td>${f.portMirror ? html`<a href=${'#/port-mirrors/' + f.portMirror.uuid}>${f.portMirror.name}</a>` : html`<span class="muted">Free</span>`}</td>
        <td><${ActionButton} class="small" aria-label=${`Attach to cluster: ${f.name}`} onClick=${() => setDialog({ attach: f })}
          why=${clusters.every((c) => f.clusters.some((x) => x.uuid === c.uuid)) ? 'Attached to every cluster already.' : ''}>Attach to cluster<//></td>
      </tr>`)}</tbody>
    </table>
    ${page.items.length === 0 && html`<p class="empty">No flow network${p.name ? ` whose name contains “${p.name}”` : ' yet'}.</p>`}`}
    ${dialog && dialog.create && html`<${CreateFlowNetworkDialog} clusters=${clusters} onClose=${() => setDialog(null)} onDone=${(f) => done(`Flow network ${f.name} created.`)} />`}
    ${dialog && dialog.attach && html`<${AttachDialog} fn=${dialog.attach} clusters=${clusters} onClose=${() => setDialog(null)} onDone=${(c) => done(`${dialog.attach.name} attached to ${c}.`)} />`}
  </section>`;
}

function CreateFlowNetworkDialog({ clusters, onClose, onDone }) {
  const [v, setV] = useState({ name: '', description: '', cidr: '', encapsulation: 'GRE', clusters: [] });
  const set = (k) => (e) => setV({ ...v, [k]: e.currentTarget.value });
  const ids = { name: useId(), desc: useId(), cidr: useId(), cidrNote: useId(), encap: useId(), encapNote: useId() };
  const submit = async () => {
    const d = await gql(`mutation($in: FlowNetworkInput!) { createFlowNetwork(input: $in) { uuid name } }`, { in: {
      name: v.name, description: v.description || null, cidr: v.cidr, encapsulation: v.encapsulation, clusterUuids: v.clusters } });
    onDone(d.createFlowNetwork);
  };
  return html`<${FormDialog} title="Create Flow Network" onClose=${onClose} onSubmit=${submit}>
    <div class="field"><label for=${ids.name}>Name</label><input id=${ids.name} type="text" value=${v.name} data-autofocus onInput=${set('name')} /></div>
    <div class="field"><label for=${ids.desc}>Description</label><input id=${ids.desc} type="text" value=${v.description} onInput=${set('description')} /></div>
    <div class="field"><label for=${ids.cidr}>CIDR</label><input id=${ids.cidr} type="text" value=${v.cidr} placeholder="198.18.0.0/24" aria-describedby=${ids.cidrNote} onInput=${set('cidr')} />
      <p class="hint" id=${ids.cidrNote}>An IPv4 network; each host of the attached clusters gets a tunnel endpoint address from it.</p></div>
    <div class="field"><label for=${ids.encap}>Encapsulation</label>
      <select id=${ids.encap} value=${v.encapsulation} aria-describedby=${ids.encapNote} onChange=${set('encapsulation')}><option value="GRE">GRE</option><option value="VXLAN">VXLAN</option>
        <option value="ERSPAN_V1">ERSPAN type II (ERSPAN_V1)</option><option value="ERSPAN_V2">ERSPAN type III (ERSPAN_V2)</option></select>
      <p class="hint" id=${ids.encapNote}>ERSPAN carries at most 1023 destinations, and a cluster cannot carry a GRE and an ERSPAN flow network at once.</p></div>
    <fieldset><legend>Clusters</legend>
      ${clusters.length === 0 && html`<p class="hint">No cluster registered.</p>`}
      ${clusters.map((c) => html`<div class="check"><input type="checkbox" id=${'fc-' + c.uuid} checked=${v.clusters.includes(c.uuid)}
        onChange=${(e) => setV({ ...v, clusters: e.currentTarget.checked ? [...v.clusters, c.uuid] : v.clusters.filter((x) => x !== c.uuid) })} />
        <label for=${'fc-' + c.uuid}>${c.name}</label></div>`)}
    </fieldset>
  <//>`;
}

function AttachDialog({ fn, clusters, onClose, onDone }) {
  const free = clusters.filter((c) => !fn.clusters.some((x) => x.uuid === c.uuid));
  const [cluster, setCluster] = useState('');
  const id = useId();
  const submit = async () => {
    if (!cluster) throw new Error('Choose a cluster.');
    await gql(`mutation($f: ID!, $c: ID!) { attachFlowNetworkToCluster(flowNetworkUuid: $f, clusterUuid: $c) { uuid } }`, { f: fn.uuid, c: cluster });
    onDone(free.find((c) => c.uuid === cluster).name);
  };
  return html`<${FormDialog} title=${`Attach ${fn.name} to a cluster`} onClose=${onClose} onSubmit=${submit}>
    <div class="field"><label for=${id}>Cluster</label>
      <select id=${id} value=${cluster} data-autofocus onChange=${(e) => setCluster(e.currentTarget.value)}>
        <option value="">Choose a cluster</option>
        ${free.map((c) => html`<option value=${c.uuid}>${c.name}</option>`)}
      </select></div>
  <//>`;
}

const qHosts = `query($first: Int, $offset: Int, $name: String) {
  hostPage(first: $first, offset: $offset, nameContains: $name) { totalCount offset hasNextPage
    items { uuid name managementIp bridge datapathId connected cluster { name } vmInstances { uuid }
      switch { flowCount remoteAddress connectedAt } } } }`;

export function HostsPage() {
  const p = usePaged();
  const [data, error] = usePoll(() => gql(qHosts, { first: PAGE, offset: p.offset, name: p.name }), [p.offset, p.name], 1000);
  const page = data && data.hostPage;
  return html`<section aria-labelledby="page-title">
    <div class="page-head"><h1 id="page-title" tabindex="-1">Hosts</h1></div>
    <p class="lead">The hosts the cloud's tooling registered, and the OpenFlow switch (bridge) of each: whether it is connected to this controller, and how many flows the controller holds on it.</p>
    <${PagedToolbar} p=${p} page=${page} label="Pages of hosts" />
    <${ErrorAlert} error=${error} />
    ${!page ? html`<${Loading} what="hosts" />` : html`
    <table aria-label="Hosts">
      <thead><tr><th scope="col">Name</th><th scope="col">Cluster</th><th scope="col">Management IP</th><th scope="col">Bridge</th><th scope="col">Switch</th><th scope="col">Flows held</th><th scope="col">VM Instances</th></tr></thead>
      <tbody>${page.items.map((hst) => {
        const sw = hst.switch;
        return html`<tr key=${hst.uuid}>
          <td>${hst.name}</td>
          <td>${hst.cluster.name}</td>
          <td class="mono">${hst.managementIp || html`<span class="muted">—</span>`}</td>
          <td class="mono">${hst.bridge}</td>
          <td>${hst.connected ? html`<span class="badge status-active">Connected</span>` : html`<span class="badge status-inactive">Not connected</span>`}
            ${hst.datapathId && html` <span class="muted mono">${hst.datapathId}</span>`}
            ${sw && sw.remoteAddress && html`<div class="muted">from ${sw.remoteAddress}${sw.connectedAt && html`, since <${Time} value=${sw.connectedAt} />`}</div>`}</td>
          <td>${sw ? sw.flowCount : html`<span class="muted">—</span>`}</td>
          <td>${hst.vmInstances.length}</td>
        </tr>`;
      })}</tbody>
    </table>
    ${page.items.length === 0 && html`<p class="empty">No host${p.name ? ` whose name contains “${p.name}”` : ' registered yet'}.</p>`}`}
  </section>`;
}

const qVms = `query($first: Int, $offset: Int, $name: String) {
  vmInstancePage(first: $first, offset: $offset, nameContains: $name) { totalCount offset hasNextPage
    items { uuid name host { name }
      nics { uuid mac ip isDefault qos { inboundBandwidthBps outboundBandwidthBps } port { datapathId portNo name up } } } } }`;

export function VmInstancesPage() {
  const p = usePaged();
  const [data, error] = usePoll(() => gql(qVms, { first: PAGE, offset: p.offset, name: p.name }), [p.offset, p.name], 2000);
  const page = data && data.vmInstancePage;
  return html`<section aria-labelledby="page-title">
    <div class="page-head"><h1 id="page-title" tabindex="-1">VM Instances</h1></div>
    <p class="lead">Each VM with its NICs, and where each NIC is bound now (the switch port it is attached to).</p>
    <${PagedToolbar} p=${p} page=${page} label="Pages of VM instances" />
    <${ErrorAlert} error=${error} />
    ${!page ? html`<${Loading} what="VM instances" />` : html`
    <table aria-label="VM Instances">
      <thead><tr><th scope="col">Name</th><th scope="col">Host</th><th scope="col">NICs</th></tr></thead>
      <tbody>${page.items.map((vm) => html`<tr key=${vm.uuid}>
        <td>${vm.name}</td>
        <td>${vm.host.name}</td>
        <td><ul class="plain nics">${vm.nics.map((n) => html`<li>
          <span class="mono">${n.mac}</span>${n.ip && html` <span class="mono">${n.ip}</span>`}
          ${n.isDefault && html` <span class="badge">Default NIC</span>`}
          ${n.qos && html` <span class="badge status-pending">QoS</span>`}
          ${' '}${n.port ? html`<span>bound to port ${n.port.portNo} (${n.port.name}) on ${n.port.datapathId}${n.port.up ? '' : ', down'}</span>` : html`<span class="muted">not bound</span>`}
        </li>`)}</ul></td>
      </tr>`)}</tbody>
    </table>
    ${page.items.length === 0 && html`<p class="empty">No VM instance${p.name ? ` whose name contains “${p.name}”` : ' yet'}.</p>`}`}
  </section>`;
}

const qAudits = `query($first: Int, $after: ID, $object: ID, $op: String, $actor: String, $since: Time, $until: Time) {
  audits(first: $first, after: $after, resourceUuid: $object, operation: $op, actor: $actor, since: $since, until: $until) {
    id time actor operation resourceType resourceUuid success error } }`;
const qOperations = `{ __type(name: "Mutation") { fields { name } } }`;

const toISO = (local) => (local ? new Date(local).toISOString() : null);

export function AuditPage({ params }) {
  const [f, setF] = useState({ object: params.get('object') || '', op: '', actor: '', since: '', until: '' });
  const filters = useDebounced(f, 300);
  const [cursors, setCursors] = useState(['']); // the after of each page shown so far
  useEffect(() => setCursors(['']), [filters]);
  const after = cursors[cursors.length - 1];
  const [ops] = usePoll(() => gql(qOperations), [], 0);
  const [data, error, reload] = usePoll(() => gql(qAudits, {
    first: PAGE + 1, after: after || null, object: filters.object.trim() || null, op: filters.op || null,
    actor: filters.actor.trim() || null, since: toISO(filters.since), until: toISO(filters.until),
  }), [filters, after], 0);
  const events = data ? data.audits.slice(0, PAGE) : null;
  const hasNext = data && data.audits.length > PAGE;
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.value });
  const ids = { object: useId(), op: useId(), actor: useId(), since: useId(), until: useId() };
  const opNames = ops ? ops.__type.fields.map((x) => x.name).sort() : [];
  return html`<section aria-labelledby="page-title">
    <div class="page-head"><h1 id="page-title" tabindex="-1">Audit</h1>
      <button type="button" onClick=${reload}>Refresh</button></div>
    <p class="lead">Every change asked of the controller, done or refused, newest first.</p>
    <form class="filters" role="search" aria-label="Audit filters" onSubmit=${(e) => e.preventDefault()}>
      <div class="field"><label for=${ids.object}>Object UUID</label><input id=${ids.object} type="text" class="mono" value=${f.object} onInput=${set('object')} placeholder="a port mirror, flow network, host…" /></div>
      <div class="field"><label for=${ids.op}>Operation</label><select id=${ids.op} value=${f.op} onChange=${set('op')}>
        <option value="">Any operation</option>${opNames.map((o) => html`<option value=${o}>${o}</option>`)}</select></div>
      <div class="field"><label for=${ids.actor}>Actor</label><input id=${ids.actor} type="text" value=${f.actor} onInput=${set('actor')} placeholder="token name, local, system" /></div>
      <div class="field"><label for=${ids.since}>From</label><input id=${ids.since} type="datetime-local" step="1" value=${f.since} onInput=${set('since')} /></div>
      <div class="field"><label for=${ids.until}>Until</label><input id=${ids.until} type="datetime-local" step="1" value=${f.until} onInput=${set('until')} /></div>
    </form>
    ${events && html`<${Pager} label="Pages of audit events" offset=${(cursors.length - 1) * PAGE} count=${events.length}
      hasPrev=${cursors.length > 1} hasNext=${hasNext}
      onPrev=${() => setCursors(cursors.slice(0, -1))} onNext=${() => setCursors([...cursors, events[events.length - 1].id])} />`}
    <${ErrorAlert} error=${error} />
    ${!events ? html`<${Loading} what="audit events" />` : html`<${AuditTable} events=${events} withObject />`}
  </section>`;
}
