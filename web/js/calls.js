// 1:1 WebRTC calls signalled through `signal` frames, and the call panel.

import { appendChildren, clear, h, randomId, toast } from './dom.js';
import { state } from './state.js';
import { socket } from './connection.js';
import { api } from './api.js';

const RING_TIMEOUT_MS = 45_000;

function signalPeer(to, payload, callId) {
  return socket.notify({ type: 'signal', to, payload, call_id: callId }, (e) => {
    if (state.call?.id !== callId) return;
    const why = e.code === 'not_found' ? `${to} is not online.` : e.code === 'forbidden' ? `You share no room with ${to}.` : e.message;
    endCall(why);
  });
}

export function startCall(peer, video) {
  if (state.call) {
    toast('You are already in a call.', 'error');
    return;
  }
  if (!socket.open) {
    toast('Not connected.', 'error');
    return;
  }
  const call = { id: `call-${randomId()}`, peer, video, role: 'caller', status: 'calling', pc: null, local: null, remote: null, candidates: [], ready: null };
  state.call = call;
  call.ringTimer = setTimeout(() => {
    if (state.call === call && call.status === 'calling') {
      signalPeer(peer, { type: 'hangup' }, call.id);
      endCall(`${peer} did not answer.`);
    }
  }, RING_TIMEOUT_MS);
  signalPeer(peer, { type: 'invite', video }, call.id);
  renderCall();
}

export async function onSignal(f) {
  const p = f.payload;
  if (!p || typeof p !== 'object' || typeof f.from !== 'string') return;
  const call = state.call;
  if (p.type === 'invite') {
    if (call && call.id !== f.call_id) {
      signalPeer(f.from, { type: 'busy' }, f.call_id);
      return;
    }
    if (call) return;
    state.call = { id: f.call_id, peer: f.from, video: p.video !== false, role: 'callee', status: 'ringing', pc: null, local: null, remote: null, candidates: [], ready: null };
    renderCall();
    return;
  }
  if (!call || call.id !== f.call_id || call.peer !== f.from) return;
  try {
    switch (p.type) {
      case 'accept':
        if (call.role !== 'caller' || call.status !== 'calling') return;
        clearTimeout(call.ringTimer);
        setCallStatus(call, 'connecting');
        call.ready = setupPeer(call);
        await call.ready;
        if (state.call !== call) return;
        await call.pc.setLocalDescription(await call.pc.createOffer());
        signalPeer(call.peer, { type: 'offer', sdp: call.pc.localDescription.sdp }, call.id);
        break;
      case 'offer':
        // The offer goes to every tab of ours; one still ringing was answered in another.
        if (call.status === 'ringing') {
          endCall('Answered on another device.');
          return;
        }
        await call.ready;
        if (state.call !== call || !call.pc) return;
        await call.pc.setRemoteDescription({ type: 'offer', sdp: p.sdp });
        await flushCandidates(call);
        await call.pc.setLocalDescription(await call.pc.createAnswer());
        signalPeer(call.peer, { type: 'answer', sdp: call.pc.localDescription.sdp }, call.id);
        break;
      case 'answer':
        if (!call.pc) return;
        await call.pc.setRemoteDescription({ type: 'answer', sdp: p.sdp });
        await flushCandidates(call);
        break;
      case 'ice':
        if (call.pc?.remoteDescription) await call.pc.addIceCandidate(p.candidate);
        else call.candidates.push(p.candidate);
        break;
      case 'decline':
        endCall(`${call.peer} declined the call.`);
        break;
      case 'busy':
        endCall(`${call.peer} is in another call.`);
        break;
      case 'hangup':
        endCall(call.status === 'ringing' ? `Missed call from ${call.peer}.` : `${call.peer} hung up.`);
        break;
      default:
        break;
    }
  } catch (e) {
    if (state.call === call) {
      signalPeer(call.peer, { type: 'hangup' }, call.id);
      endCall(`Call failed: ${e.message}`);
    }
  }
}

async function flushCandidates(call) {
  const queued = call.candidates;
  call.candidates = [];
  for (const c of queued) await call.pc.addIceCandidate(c);
}

async function getMedia(video) {
  if (!navigator.mediaDevices?.getUserMedia) return null;
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video });
  } catch {
    if (!video) return null;
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch {
      return null;
    }
  }
}

/** `GET /api/config`'s ICE servers, kept until a minute before their TURN credentials expire. */
let iceCache = null;
async function loadIceServers() {
  const now = Date.now() / 1000;
  if (iceCache && (iceCache.expires === null || iceCache.expires - 60 > now)) return iceCache.servers;
  try {
    const config = await api('GET', '/api/config');
    const servers = Array.isArray(config?.ice_servers) ? config.ice_servers : [];
    iceCache = { servers, expires: typeof config?.ice_expires_at === 'number' ? config.ice_expires_at : null };
    return servers;
  } catch {
    // Without the server's list a call can still connect directly.
    return [];
  }
}

async function setupPeer(call) {
  call.local = await getMedia(call.video);
  if (state.call !== call) {
    call.local?.getTracks().forEach((t) => t.stop());
    return;
  }
  // The server's STUN/TURN servers (`GET /api/config`, TURN credentials minted for this
  // user); none configured, host candidates still work on one machine or one LAN.
  const iceServers = await loadIceServers();
  if (state.call !== call) {
    call.local?.getTracks().forEach((t) => t.stop());
    return;
  }
  const pc = new RTCPeerConnection({ iceServers });
  call.pc = pc;
  if (call.local) {
    for (const track of call.local.getTracks()) pc.addTrack(track, call.local);
    if (!call.video || call.local.getVideoTracks().length === 0) pc.addTransceiver('video', { direction: 'recvonly' });
  } else {
    // Without a microphone or camera we can still see and hear the other side.
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  }
  pc.onicecandidate = (e) => {
    if (e.candidate && state.call === call) signalPeer(call.peer, { type: 'ice', candidate: e.candidate.toJSON() }, call.id);
  };
  pc.ontrack = (e) => {
    if (!call.remote) call.remote = e.streams[0] ?? new MediaStream();
    if (!e.streams[0]) call.remote.addTrack(e.track);
    renderCall();
  };
  pc.onconnectionstatechange = () => {
    if (state.call !== call) return;
    const s = pc.connectionState;
    if (s === 'connected') setCallStatus(call, 'connected');
    else if (s === 'disconnected' && call.status === 'connected') setCallStatus(call, 'reconnecting');
    else if (s === 'failed') {
      signalPeer(call.peer, { type: 'hangup' }, call.id);
      endCall('The call could not connect.');
    }
  };
  renderCall();
}

function setCallStatus(call, status) {
  call.status = status;
  if (status === 'connected') call.connectedAt = call.connectedAt ?? Date.now();
  renderCall();
}

function acceptCall() {
  const call = state.call;
  if (!call || call.status !== 'ringing') return;
  setCallStatus(call, 'connecting');
  call.ready = setupPeer(call);
  call.ready.then(() => {
    if (state.call === call) signalPeer(call.peer, { type: 'accept' }, call.id);
  });
}

function declineCall() {
  const call = state.call;
  if (!call) return;
  signalPeer(call.peer, { type: 'decline' }, call.id);
  endCall();
}

export function hangUp() {
  const call = state.call;
  if (!call) return;
  signalPeer(call.peer, { type: 'hangup' }, call.id);
  endCall('Call ended.');
}

function endCall(reason) {
  const call = state.call;
  if (!call) return;
  clearTimeout(call.ringTimer);
  call.local?.getTracks().forEach((t) => t.stop());
  try {
    call.pc?.close();
  } catch {
    // already closed
  }
  state.call = null;
  renderCall(reason);
}

let callView = null;

function renderCall(endedReason) {
  const host = document.getElementById('call-root');
  if (!host) return;
  const call = state.call;
  if (!call) {
    clear(host);
    callView = null;
    if (endedReason) toast(endedReason);
    return;
  }
  if (!callView || callView.id !== call.id) {
    clear(host);
    const remote = h('video', { class: 'remote-video', autoplay: true, playsinline: true, 'aria-label': `Video from ${call.peer}` });
    const local = h('video', { class: 'local-video', autoplay: true, playsinline: true, muted: true, 'aria-label': 'Your camera' });
    const status = h('p', { class: 'call-status', role: 'status', 'aria-live': 'polite' });
    const buttons = h('div', { class: 'call-buttons' });
    const videos = h('div', { class: 'videos', hidden: true }, remote, local);
    const panel = h('section', { class: 'call', id: 'call', role: 'dialog', 'aria-label': `Call with ${call.peer}` },
      videos, status, buttons);
    host.append(panel);
    callView = { id: call.id, panel, videos, remote, local, status, buttons, shownStatus: null };
  }
  const v = callView;
  v.panel.dataset.callState = call.status;
  if (call.local && v.local.srcObject !== call.local) v.local.srcObject = call.local;
  if (call.remote && v.remote.srcObject !== call.remote) v.remote.srcObject = call.remote;
  v.local.hidden = !call.local || call.local.getVideoTracks().length === 0;
  // Nothing to show before media flows (ringing, or a voice call without any video).
  v.videos.hidden = !call.remote && v.local.hidden;
  const texts = {
    calling: `Calling ${call.peer}…`,
    ringing: `${call.peer} is calling you${call.video ? ' (video)' : ''}`,
    connecting: `Connecting to ${call.peer}…`,
    connected: `In a call with ${call.peer}`,
    reconnecting: `Reconnecting to ${call.peer}…`,
  };
  v.status.textContent = texts[call.status] ?? call.status;
  if (v.shownStatus === call.status) return;
  v.shownStatus = call.status;
  const buttons = clear(v.buttons);
  if (call.status === 'ringing') {
    buttons.append(
      h('button', { type: 'button', class: 'accept', onclick: acceptCall }, 'Accept'),
      h('button', { type: 'button', class: 'danger', onclick: declineCall }, 'Decline'));
  } else {
    const toggle = (kind, label) => {
      const b = h('button', {
        type: 'button', class: 'ghost', 'aria-pressed': 'false',
        onclick: () => {
          const tracks = kind === 'audio' ? call.local?.getAudioTracks() : call.local?.getVideoTracks();
          if (!tracks?.length) return;
          const off = b.getAttribute('aria-pressed') !== 'true';
          tracks.forEach((t) => { t.enabled = !off; });
          b.setAttribute('aria-pressed', String(off));
        },
      }, label);
      return b;
    };
    appendChildren(buttons, [toggle('audio', 'Mute'), call.video ? toggle('video', 'Camera off') : null,
      h('button', { type: 'button', class: 'danger', onclick: hangUp }, 'Hang up')]);
  }
}
