// `node --import @wxhost/plugin-sdk/register --test`: plugins' tests run natively, the host's
// imports answered by the TestHost (see `testing.js`).
import { register } from 'node:module';

register('./testing/hooks.js', import.meta.url);
