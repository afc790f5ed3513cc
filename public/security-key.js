// FIDO2 security keys and passkeys in the browser (docs/decisions/0014-security-keys.md):
// - the second-factor prompt (#webauthn-form): navigator.credentials.get with the
//   server's options, the assertion posted as JSON in the form's `response`;
// - the settings page (#security-key-add): navigator.credentials.create with the
//   server's options, the credential posted as JSON in the form's `credential`.
// The JSON is WebAuthn's (base64url for binary), what @simplewebauthn/server reads.

const toBytes = (text) => {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
};

const toText = (buffer) => {
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};

const descriptors = (list) => (list || []).map((d) => ({ ...d, id: toBytes(d.id) }));

function requestOptions(json) {
  return { ...json, challenge: toBytes(json.challenge), allowCredentials: descriptors(json.allowCredentials) };
}

function creationOptions(json) {
  return {
    ...json,
    challenge: toBytes(json.challenge),
    user: { ...json.user, id: toBytes(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

/** A credential as JSON (what @simplewebauthn/server reads), with its response's own fields. */
function credentialJson(credential, response) {
  return {
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: { clientDataJSON: toText(credential.response.clientDataJSON), ...response },
  };
}

function assertionJson(credential) {
  const r = credential.response;
  return credentialJson(credential, {
    authenticatorData: toText(r.authenticatorData),
    signature: toText(r.signature),
    userHandle: r.userHandle ? toText(r.userHandle) : undefined,
  });
}

function registrationJson(credential) {
  const r = credential.response;
  return credentialJson(credential, {
    attestationObject: toText(r.attestationObject),
    transports: typeof r.getTransports === 'function' ? r.getTransports() : [],
  });
}

const supported = () => typeof window.PublicKeyCredential === 'function' && navigator.credentials;

const login = document.getElementById('webauthn-form');
if (login) {
  const status = document.getElementById('webauthn-status');
  const button = document.getElementById('webauthn-start');
  const tell = (text, alert) => {
    status.textContent = text;
    status.className = alert ? 'error' : 'help';
    if (alert) status.setAttribute('role', 'alert');
    else status.removeAttribute('role');
  };
  button.addEventListener('click', async () => {
    if (!supported()) return tell(login.dataset.unsupported, true);
    button.disabled = true;
    tell(login.dataset.waiting, false);
    try {
      const credential = await navigator.credentials.get({ publicKey: requestOptions(JSON.parse(login.dataset.options)) });
      document.getElementById('webauthn-response').value = JSON.stringify(assertionJson(credential));
      login.submit();
    } catch (error) {
      status.dataset.error = error?.name ? error.name : 'Error';
      button.disabled = false;
      tell(login.dataset.failed, true);
      button.focus();
    }
  });
}

const add = document.getElementById('security-key-add');
if (add) {
  const status = document.getElementById('security-key-status');
  add.addEventListener('submit', async (event) => {
    if (add.dataset.ready === '1') return;
    event.preventDefault();
    if (!supported()) {
      status.textContent = add.dataset.unsupported;
      status.setAttribute('role', 'alert');
      return;
    }
    status.textContent = add.dataset.working;
    try {
      const credential = await navigator.credentials.create({ publicKey: creationOptions(JSON.parse(add.dataset.options)) });
      document.getElementById('security-key-credential').value = JSON.stringify(registrationJson(credential));
      add.dataset.ready = '1';
      add.submit();
    } catch (error) {
      // the DOMException's name (NotAllowedError, InvalidStateError …) for diagnosis; the person reads the text
      status.dataset.error = error?.name ? error.name : 'Error';
      status.textContent = add.dataset.failed;
      status.setAttribute('role', 'alert');
    }
  });
}
