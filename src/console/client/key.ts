// Asking for an API key: when the API answers 401 (or the person clicks "API key"). The key stays in
// this tab's session storage; "Forget key" removes it.
import { apiKey } from './api';

/** Opens the dialog; resolves true when the key changed (set or forgotten). */
export function askForKey(reason?: string): Promise<boolean> {
  const dialog = document.querySelector<HTMLDialogElement>('#key-dialog')!;
  const input = document.querySelector<HTMLInputElement>('#key-input')!;
  const why = document.querySelector<HTMLElement>('#key-reason')!;
  if (reason) why.textContent = reason;
  input.value = '';
  document.querySelector<HTMLButtonElement>('#forget')!.hidden = apiKey.get() === null;
  return new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      () => {
        if (dialog.returnValue === 'save' && input.value.trim()) {
          apiKey.set(input.value.trim());
          resolve(true);
        } else if (dialog.returnValue === 'forget') {
          apiKey.forget();
          resolve(true);
        } else resolve(false);
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}
