// The console's only way to the controller: GraphQL over HTTP on the same origin.

const TOKEN_KEY = 'portmirror.token';

// The token lives in sessionStorage: for this browser tab only, gone when it closes.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class GqlError extends Error {
  constructor(message, code, status, rule) {
    super(message);
    this.code = code || 'INTERNAL';
    this.status = status || 0;
    this.rule = rule || '';
  }
}

let authLost = () => {};

// onAuthLost is called when the API answers 401 to a request made with the stored token.
export function onAuthLost(fn) { authLost = fn; }

// gql runs one GraphQL document and returns its data, or throws a GqlError with the API's message and code.
export async function gql(query, variables = {}, opts = {}) {
  const headers = {
    'Content-Type': 'application/json',
    'Accept': 'application/graphql-response+json, application/json;q=0.9',
  };
  const t = opts.token !== undefined ? opts.token : token.get();
  if (t) headers.Authorization = 'Bearer ' + t;
  let res;
  try {
    res = await fetch('/graphql', {
      method: 'POST', headers, body: JSON.stringify({ query, variables }),
      credentials: 'omit', cache: 'no-store', signal: opts.signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new GqlError('The controller cannot be reached (' + e.message + '). Is portmirrord running?', 'NETWORK');
  }
  let body;
  try {
    body = await res.json();
  } catch {
    throw new GqlError(`The controller answered HTTP ${res.status} without a GraphQL response.`, 'INTERNAL', res.status);
  }
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    const err = new GqlError(e.message, e.extensions && e.extensions.code, res.status, e.extensions && e.extensions.rule);
    if (res.status === 401 && opts.token === undefined) authLost(err);
    throw err;
  }
  return body.data;
}
