// Asks before a destructive action, in the page's Bootstrap modal (#confirm-modal), never with
// window.confirm: the question names what is at stake, and the buttons say what they do.
// Needs Bootstrap's bundle (/vendor/bootstrap/js/bootstrap.bundle.min.js) loaded before.

const $ = (id) => document.getElementById(id);

/**
 * Shows the question and resolves true when `action` (the confirm button's words) is chosen,
 * false when the modal is dismissed (Cancel, Escape, the close button, a click outside).
 */
export function confirmAction({ title, body, action }) {
  const el = $('confirm-modal');
  $('confirm-title').textContent = title;
  $('confirm-body').textContent = body;
  const ok = $('confirm-ok');
  ok.textContent = action;
  const modal = window.bootstrap.Modal.getOrCreateInstance(el);
  return new Promise((resolve) => {
    let confirmed = false;
    const onOk = () => {
      confirmed = true;
      modal.hide();
    };
    ok.addEventListener('click', onOk);
    el.addEventListener(
      'hidden.bs.modal',
      () => {
        ok.removeEventListener('click', onOk);
        resolve(confirmed);
      },
      { once: true },
    );
    modal.show();
  });
}
