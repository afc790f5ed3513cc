// K3: the login proceeds by itself once the phone approves. The page keeps a
// live connection (a long poll of its login flow); when the flow is approved
// it submits its Continue form, which takes the session; when the flow was
// denied, expired or changed, it reloads to show why. No text of its own:
// everything shown comes from the server's page.
const panel = document.getElementById('push-panel');
const form = document.getElementById('push-continue-form');

async function follow(flowId) {
  for (;;) {
    let flow;
    try {
      const response = await fetch(`/api/v1/login/${encodeURIComponent(flowId)}?wait=25`, { headers: { accept: 'application/json' }, cache: 'no-store' });
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

if (panel && form) void follow(panel.dataset.flow);
