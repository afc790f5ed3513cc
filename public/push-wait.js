// K3, K11: the login (or the step-up) proceeds by itself once the phone
// approves. The page keeps a live connection (a long poll of its flow, at the
// address the panel names); when the flow is approved it submits its
// Continue form, which takes the session (or the verification); when the
// flow was denied, expired or changed, it reloads to show why. No text of
// its own: everything shown comes from the server's page.
const panel = document.getElementById('push-panel');
const form = document.getElementById('push-continue-form');

async function follow(poll) {
  for (;;) {
    let flow;
    try {
      const response = await fetch(poll, { headers: { accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin' });
      if (!response.ok) return window.location.reload();
      flow = await response.json();
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      continue;
    }
    if (flow.state === 'approved') return form.submit();
    if (flow.state !== 'second_factor' || !flow.challenge || flow.challenge.type !== 'push') return window.location.reload();
  }
}

if (panel && form && (panel.dataset.poll?.startsWith('/api/v1/') || panel.dataset.poll?.startsWith('/login/'))) void follow(panel.dataset.poll);
