// The login page: served without a token, so it is plain DOM code that shares
// nothing with the app. The token goes once in a POST body; the daemon answers
// with an HttpOnly cookie, and the token is not kept anywhere in the page.

import './login.css';

interface LoginError {
  error?: { message?: string; hint?: string };
}

const form = document.getElementById('login') as HTMLFormElement;
const input = document.getElementById('token') as HTMLInputElement;
const button = form.querySelector('button') as HTMLButtonElement;
const out = document.getElementById('login-error') as HTMLElement;

function show(msg: string): void {
  out.textContent = msg;
  out.hidden = msg === '';
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = input.value.trim();
  if (!token) {
    show('Paste a token first.');
    return;
  }
  button.disabled = true;
  show('');
  void fetch('/v1/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  })
    .then(async (res) => {
      if (res.ok) {
        input.value = '';
        window.location.replace('/');
        return;
      }
      const body = (await res.json().catch(() => ({}))) as LoginError;
      const e = body.error;
      show(e?.message ? `${e.message}${e.hint ? ` (${e.hint})` : ''}` : `login failed (${res.status})`);
      input.select();
    })
    .catch(() => show('cannot reach xenoded'))
    .finally(() => {
      button.disabled = false;
    });
});
