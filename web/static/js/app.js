// The console's shell: who is signed in, the navigation, and which page the address shows.
import { render } from 'preact';
import { useState, useEffect, useId, useRef } from 'preact/hooks';
import { gql, token, onAuthLost } from './api.js';
import { html, Me, READ_ONLY_REASON, setAnnouncer } from './ui.js';
import { PortMirrorsPage, PortMirrorPage } from './portmirrors.js';
import { FlowNetworksPage, HostsPage, VmInstancesPage, AuditPage } from './inventory.js';

const PAGES = [
  { path: 'port-mirrors', name: 'Port Mirroring' },
  { path: 'flow-networks', name: 'Flow Networks' },
  { path: 'hosts', name: 'Hosts' },
  { path: 'vm-instances', name: 'VM Instances' },
  { path: 'audit', name: 'Audit' },
];

// parseHash reads "#/port-mirrors/<uuid>?x=y" as ["port-mirrors", "<uuid>"] and its parameters.
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean);
  return { parts: parts.length ? parts : ['port-mirrors'], params: new URLSearchParams(query || '') };
}

function useRoute() {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function SignIn({ onSignedIn, message }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(message || '');
  const [busy, setBusy] = useState(false);
  const id = useId();
  const hintId = useId();
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const d = await gql('{ me { actor role } }', {}, { token: value.trim() });
      token.set(value.trim());
      onSignedIn(d.me);
    } catch (err) {
      setError(err.status === 401 ? 'This token is not accepted: ' + err.message : err.message);
    }
    setBusy(false);
  };
  return html`<main class="signin" id="main">
    <form onSubmit=${submit} aria-labelledby="signin-title">
      <div class="brand big"><span class="logo" aria-hidden="true"></span>portmirror</div>
      <h1 id="signin-title">Sign in</h1>
      <p id=${hintId}>This controller asks for an API token. Ask its administrator for one: an admin token may change everything, a viewer token may look at everything.</p>
      <div class="field">
        <label for=${id}>Token</label>
        <input id=${id} type="password" autocomplete="current-password" value=${value} aria-describedby=${hintId} onInput=${(e) => setValue(e.currentTarget.value)} autofocus />
      </div>
      ${error && html`<div role="alert" class="alert error">${error}</div>`}
      <button type="submit" class="primary" aria-disabled=${busy ? 'true' : undefined}>Sign in</button>
      <p class="hint">The token is kept for this browser tab only.</p>
    </form>
  </main>`;
}

function Shell({ me, signedIn, onSignOut }) {
  const route = useRoute();
  const [status, setStatus] = useState('');
  const mainRef = useRef(null);
  useEffect(() => {
    let t = 0;
    setAnnouncer((msg) => { setStatus(msg); clearTimeout(t); t = setTimeout(() => setStatus(''), 6000); });
  }, []);
  const [section, id] = route.parts;
  const page = PAGES.find((p) => p.path === section) || PAGES[0];
  // a new page: its title, and focus on its heading, so that a screen reader starts there
  const first = useRef(true);
  useEffect(() => {
    document.title = `${page.name} · portmirror`;
    if (first.current) { first.current = false; return; }
    const hd = mainRef.current && mainRef.current.querySelector('h1');
    if (hd) hd.focus();
  }, [route.parts.join('/')]);
  const navigate = (hash) => { location.hash = hash; };
  let body;
  switch (page.path) {
    case 'port-mirrors': body = id ? html`<${PortMirrorPage} uuid=${id} navigate=${navigate} />` : html`<${PortMirrorsPage} />`; break;
    case 'flow-networks': body = html`<${FlowNetworksPage} />`; break;
    case 'hosts': body = html`<${HostsPage} />`; break;
    case 'vm-instances': body = html`<${VmInstancesPage} />`; break;
    default: body = html`<${AuditPage} params=${route.params} key=${route.params.toString()} />`;
  }
  const canWrite = me.role === 'ADMIN';
  return html`<${Me.Provider} value=${{ ...me, canWrite, signedIn }}>
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); mainRef.current.focus(); }}>Skip to content</a>
    <header class="top">
      <div class="brand"><span class="logo" aria-hidden="true"></span>portmirror <span class="muted">console</span></div>
      <div class="who">
        <span>Signed in as <strong>${me.actor}</strong> (${me.role === 'ADMIN' ? 'admin' : 'viewer'})</span>
        ${signedIn && html`<button type="button" class="small" onClick=${onSignOut}>Sign out</button>`}
      </div>
      ${!canWrite && html`<p class="readonly" id="read-only-note">${READ_ONLY_REASON}</p>`}
    </header>
    <div class="layout">
      <nav aria-label="Main">
        <ul>${PAGES.map((p) => html`<li><a href=${'#/' + p.path} aria-current=${p === page ? 'page' : undefined}>${p.name}</a></li>`)}</ul>
        <p class="nav-foot"><a href="/graphql" target="_blank" rel="noopener">GraphQL API (GraphiQL)</a></p>
      </nav>
      <main id="main" ref=${mainRef} tabindex="-1">
        <div role="status" class=${status ? 'toast' : 'sr-only'}>${status}</div>
        ${body}
      </main>
    </div>
  <//>`;
}

function App() {
  const [me, setMe] = useState(null);
  const [need, setNeed] = useState(false);
  const [fatal, setFatal] = useState('');
  const [lostMsg, setLostMsg] = useState('');
  useEffect(() => {
    onAuthLost((err) => { token.clear(); setMe(null); setLostMsg('You were signed out: ' + err.message); setNeed(true); });
    gql('{ me { actor role } }').then((d) => setMe(d.me)).catch((err) => {
      if (err.status === 401) setNeed(true);
      else setFatal(err.message);
    });
  }, []);
  if (fatal) return html`<main class="signin" id="main"><div role="alert" class="alert error">The console cannot start: ${fatal}</div></main>`;
  if (need && !me) return html`<${SignIn} message=${lostMsg} onSignedIn=${(m) => { setMe(m); setNeed(false); setLostMsg(''); }} />`;
  if (!me) return html`<p class="boot" role="status">Loading the console…</p>`;
  return html`<${Shell} me=${me} signedIn=${!!token.get()} onSignOut=${() => { token.clear(); setMe(null); setNeed(true); location.hash = ''; }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
