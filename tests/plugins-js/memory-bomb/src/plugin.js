// Allocates until it runs out of memory: the host's memory cap must stop it.
import { Reply, definePlugin } from '@wxhost/plugin-sdk';

export const handle = definePlugin(() => {
  const hoard = [];
  for (;;) {
    hoard.push(new Uint8Array(1024 * 1024).fill(1));
    if (hoard.length > 100_000) {
      return Reply.text(`never: ${hoard.length}`);
    }
  }
});
