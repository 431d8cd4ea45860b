// Calls up the layers: lower modules (auth, api, connection, rooms, login, views, frames) ask
// for a logout, a repaint or the frame handlers through `hooks` instead of importing the
// modules that import them, so imports only go one way. main.js fills every entry in before
// start-up; one left out throws when called.

const unwired = (name) => () => {
  throw new Error(`hooks.${name} is not wired`);
};

export const hooks = {
  /** Ends the session, optionally saying why on the login screen (main.js). */
  logout: unwired('logout'),
  /** Shows the app once logged in (main.js). */
  startApp: unwired('startApp'),
  /** Records and shows the connection state (views.js). */
  setConn: unwired('setConn'),
  /** The socket opened: join the rooms again (frames.js). */
  onSocketOpen: unwired('onSocketOpen'),
  /** The socket closed with this code (frames.js). */
  onSocketClosed: unwired('onSocketClosed'),
  /** A frame arrived (frames.js). */
  handleFrame: unwired('handleFrame'),
  /** Repaints the room list and the room shown (views.js). */
  renderAll: unwired('renderAll'),
  /** Repaints the room list (views.js). */
  renderRoomList: unwired('renderRoomList'),
  /** Repaints a room's header if it is on screen (views.js). */
  renderRoomHeader: unwired('renderRoomHeader'),
};
