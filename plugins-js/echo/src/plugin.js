// `echo-js`: answers a text message with `echo: <content>`; passes on everything else.
import { Reply, definePlugin } from '@wxhost/plugin-sdk';

export const handle = definePlugin((msg) => {
  const text = msg.text();
  return text === undefined ? undefined : Reply.text(`echo: ${text}`);
});
