// The host's imports, the one module that names them. In a component they are the WIT world's
// imports; under Node (tests) `@wxhost/plugin-sdk/register` resolves them to the fakes of
// `testing.js`.
export * as rawFields from 'wxhost:plugin/raw-fields@0.1.3';
export * as log from 'wxhost:plugin/log@0.1.3';
export * as config from 'wxhost:plugin/config@0.1.3';
export * as kv from 'wxhost:plugin/kv@0.1.3';
export * as earlyReply from 'wxhost:plugin/early-reply@0.1.3';
export * as wechatApi from 'wxhost:plugin/wechat-api@0.1.3';
export * as mediaHost from 'wxhost:plugin/media@0.1.3';
