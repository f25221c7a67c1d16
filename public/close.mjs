// WebSocket close codes, as the server's src/protocol.rs (`mod close`)
// defines them; a Rust test (tests/close_codes.rs) checks that the two
// lists agree, so the page cannot drift from the server.
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  // Not sent by the server: the browser's code for a connection lost
  // without a close frame.
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  IDLE_TIMEOUT: 4000,
  KEEPALIVE_TIMEOUT: 4001,
  KILLED: 4002,
  REPLACED: 4003,
  NO_SUCH_SESSION: 4004,
  OWNER_GONE: 4005,
});
