// Throws on every text: the host reports the exception, with its message, as the plugin's error.
import { definePlugin } from '@wxhost/plugin-sdk';

export const handle = definePlugin((msg) => {
  throw new TypeError(`cannot handle ${JSON.stringify(msg.text())}`);
});
