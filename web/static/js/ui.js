// Building blocks shared by the pages: the html tag, the caller's context, polling, dialogs, buttons that say
// why they are disabled, pagers and badges.
import { h, createContext } from 'preact';
import { useState, useEffect, useRef, useContext, useId, useCallback } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

// Me is who the console acts as: { actor, role, canWrite, signedIn }.
export const Me = createContext({ actor: '', role: 'VIEWER', canWrite: false, signedIn: false });
export const useMe = () => useContext(Me);

export const READ_ONLY_REASON = 'Your token has the viewer role: it may look at everything and change nothing. Sign in with an admin token to make changes.';

// announce puts a message in the page's status region (read out by screen readers, shown at the top).
let announcer = () => {};
export function setAnnouncer(fn) { announcer = fn; }
export function announce(msg) { announcer(msg); }

// usePoll runs load now, then every `every` ms (0: once), whenever deps change, and after reload(). A request
// is not started while the previous one runs; an answer to an outdated request is dropped.
export function usePoll(load, deps, every = 1000) {
  const [state, setState] = useState({ data: undefined, error: null });
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    let alive = true;
    let timer = 0;
    let running = false;
    const run = async () => {
      if (!alive || running) return;
      running = true;
      try {
        const data = await load();
        if (alive) setState({ data, error: null });
      } catch (e) {
        if (alive) setState((s) => ({ data: s.data, error: e }));
      } finally {
        running = false;
        if (alive && every > 0) timer = setTimeout(run, document.hidden ? every * 5 : every);
      }
    };
    run();
    return () => { alive = false; clearTimeout(timer); };
  }, [...deps, nonce]);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return [state.data, state.error, reload];
}

// useDebounced is value, once it has stopped changing for ms.
export function useDebounced(value, ms = 250) {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((el) => el.offsetParent !== null || el === document.activeElement);
}

// Dialog is a modal dialog: focus moves into it and stays there (Tab wraps), Escape and Cancel close it, and
// focus goes back where it was.
export function Dialog({ title, onClose, children, alert = false, describedBy, wide = false }) {
  const ref = useRef(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    const before = document.activeElement;
    if (!d.open) d.showModal();
    const first = d.querySelector('[data-autofocus]') || focusables(d)[0];
    if (first) first.focus();
    return () => {
      if (d.open) d.close();
      if (before && document.contains(before)) before.focus();
    };
  }, []);
  const onKeyDown = (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      onClose();
      return;
    }
    if (e.key !== 'Tab') return;
    const els = focusables(ref.current);
    if (els.length === 0) return;
    const first = els[0];
    const last = els[els.length - 1];
    if (e.shiftKey && (document.activeElement === first || !ref.current.contains(document.activeElement))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !ref.current.contains(document.activeElement))) {
      e.preventDefault();
      first.focus();
    }
  };
  return html`<dialog ref=${ref} class=${wide ? 'wide' : ''} role=${alert ? 'alertdialog' : 'dialog'} aria-modal="true"
      aria-labelledby=${titleId} aria-describedby=${describedBy} onKeyDown=${onKeyDown}
      onCancel=${(e) => { e.preventDefault(); onClose(); }}>
    <h2 id=${titleId}>${title}</h2>
    ${children}
  </dialog>`;
}

// FormDialog is a dialog holding a form with OK and Cancel; onSubmit returns a promise; while it runs OK is
// busy; a refusal is shown in an alert inside the dialog, which stays open with what was typed.
export function FormDialog({ title, onClose, onSubmit, children, wide, okLabel = 'OK' }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError('');
    try {
      await onSubmit();
    } catch (err) {
      setError(err.message || String(err));
      setBusy(false);
      return;
    }
    setBusy(false);
  };
  return html`<${Dialog} title=${title} onClose=${onClose} wide=${wide}>
    <form onSubmit=${submit} novalidate>
      <div class="dialog-body">${children}</div>
      ${error && html`<div role="alert" class="alert error">${error}</div>`}
      <div class="dialog-buttons">
        <button type="submit" class="primary" aria-disabled=${busy ? 'true' : undefined}>${okLabel}</button>
        <button type="button" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  <//>`;
}

// ConfirmDialog asks before an operation that cannot be undone.
export function ConfirmDialog({ title, message, onClose, onConfirm }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const msgId = useId();
  const ok = async () => {
    if (busy) return;
    setBusy(true);
    setError('');
    try {
      await onConfirm();
    } catch (err) {
      setError(err.message || String(err));
    }
    setBusy(false);
  };
  return html`<${Dialog} title=${title} onClose=${onClose} alert describedBy=${msgId}>
    <p id=${msgId}>${message}</p>
    ${error && html`<div role="alert" class="alert error">${error}</div>`}
    <div class="dialog-buttons">
      <button type="button" class="danger" onClick=${ok} aria-disabled=${busy ? 'true' : undefined}>OK</button>
      <button type="button" onClick=${onClose} data-autofocus>Cancel</button>
    </div>
  <//>`;
}

// ActionButton is a button that changes something: disabled, with the reason as its description, for a viewer
// or when `why` says it does not apply now.
export function ActionButton({ children, onClick, why, class: cls = '', ...rest }) {
  const me = useMe();
  const reason = !me.canWrite ? READ_ONLY_REASON : why;
  const id = useId();
  return html`<button type="button" class=${cls} disabled=${!!reason} aria-describedby=${reason ? id : undefined}
      onClick=${onClick} ...${rest}>${children}</button>${reason && html`<span id=${id} class="sr-only">${reason}</span>`}`;
}

// Pager shows where a page is in its list and moves through it.
export function Pager({ label, offset, count, total, hasPrev, hasNext, onPrev, onNext }) {
  const range = count === 0 ? 'None' : `${offset + 1}–${offset + count}` + (total !== undefined ? ` of ${total.toLocaleString('en')}` : '');
  return html`<div class="pager" role="group" aria-label=${label}>
    <span class="range" aria-live="polite">${range}</span>
    <button type="button" onClick=${onPrev} disabled=${!hasPrev}>Previous page</button>
    <button type="button" onClick=${onNext} disabled=${!hasNext}>Next page</button>
  </div>`;
}

// FilterBox is the name filter of a list.
export function FilterBox({ value, onInput, label = 'Filter by name', placeholder = 'Name contains…' }) {
  const id = useId();
  return html`<div class="filter">
    <label for=${id}>${label}</label>
    <input id=${id} type="text" value=${value} placeholder=${placeholder} onInput=${(e) => onInput(e.currentTarget.value)} />
  </div>`;
}

const STATUS_TEXT = { ACTIVE: 'Active', PENDING: 'Pending', INACTIVE: 'Inactive', ERROR: 'Error' };
export const statusText = (s) => STATUS_TEXT[s] || s;

export function StatusBadge({ status }) {
  return html`<span class=${'badge status-' + status.toLowerCase()}>${statusText(status)}</span>`;
}

export function StateBadge({ state }) {
  return html`<span class=${'badge state-' + state.toLowerCase()}>${state === 'ENABLED' ? 'Enabled' : 'Disabled'}</span>`;
}

const pad = (n) => String(n).padStart(2, '0');

// Time shows a moment in the browser's time zone, with the exact instant in its datetime.
export function Time({ value }) {
  if (!value) return html`<span class="muted">—</span>`;
  const d = new Date(value);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return html`<time datetime=${value}>${text}</time>`;
}

export function ErrorAlert({ error }) {
  if (!error) return null;
  return html`<div role="alert" class="alert error">${error.message || String(error)}</div>`;
}

export function Loading({ what }) {
  return html`<p class="muted" role="status">Loading ${what}…</p>`;
}

// nicLabel names a NIC by MAC and IP.
export function nicLabel(nic) {
  return nic.ip ? `${nic.mac} (${nic.ip})` : nic.mac;
}
