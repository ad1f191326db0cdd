// Spins forever on every message: the host must stop it at its deadline.
import { definePlugin } from '@wxhost/plugin-sdk';

export const handle = definePlugin(() => {
  let n = 0;
  for (;;) {
    n = (n + 1) | 0;
  }
});
