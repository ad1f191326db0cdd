// Misbehaves on command, for the host's limits to stop it: `spin` loops forever (the deadline
// must stop it), `bomb` allocates until memory runs out (the memory cap must stop it); any other
// text throws (reported as the plugin's error, with its message).
import { Reply, definePlugin } from '@wxhost/plugin-sdk';

export const handle = definePlugin((msg) => {
  switch (msg.text()) {
    case 'spin': {
      let n = 0;
      for (;;) {
        n = (n + 1) | 0;
      }
    }
    case 'bomb': {
      const hoard = [];
      while (hoard.length < 100_000) {
        hoard.push(new Uint8Array(1024 * 1024).fill(1));
      }
      return Reply.text(`never: ${hoard.length}`);
    }
    default:
      throw new TypeError(`cannot handle ${JSON.stringify(msg.text())}`);
  }
});
