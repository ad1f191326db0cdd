import { ComponentError, host } from '../state.js';

function same(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function store(kind, bytes, permanent) {
  if (bytes.length === 0) {
    throw new ComponentError({ tag: 'invalid', val: `the ${kind} is empty` });
  }
  const state = host('media');
  const found = permanent
    ? undefined
    : [...state.material.entries()].find(
        ([, m]) => !m.permanent && m.kind === kind && same(m.bytes, bytes),
      );
  if (found) {
    return found[0];
  }
  state.mediaUploads += 1;
  const mediaId = `media-${state.mediaUploads}`;
  state.material.set(mediaId, { kind, bytes: Uint8Array.from(bytes), permanent });
  return mediaId;
}

export function upload(kind, bytes) {
  return store(kind, bytes, false);
}

export function uploadPermanent(kind, bytes, video) {
  if ((kind === 'video') !== (video !== undefined)) {
    throw new ComponentError({
      tag: 'invalid',
      val: 'a permanent video, and only a video, takes a title and introduction',
    });
  }
  const mediaId = store(kind, bytes, true);
  return { mediaId, url: kind === 'image' ? `https://mmbiz.test/${mediaId}` : undefined };
}

function fetchMaterial(mediaId, urlField) {
  const found = host('media').material.get(mediaId);
  if (found === undefined) {
    throw new ComponentError({ tag: 'wechat', val: { code: 40007n, message: 'invalid media_id' } });
  }
  if (found.kind === 'video') {
    const json = JSON.stringify({ [urlField]: `https://mmbiz.test/${mediaId}` });
    return { contentType: 'application/json', bytes: new TextEncoder().encode(json) };
  }
  const contentType = found.kind === 'voice' ? 'audio/amr' : 'image/jpeg';
  return { contentType, bytes: Uint8Array.from(found.bytes) };
}

export function download(mediaId) {
  return fetchMaterial(mediaId, 'video_url');
}

export function downloadPermanent(mediaId) {
  return fetchMaterial(mediaId, 'down_url');
}
