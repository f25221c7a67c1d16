// The extra keys' byte sequences, as xterm sends them (no browser needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KEYS, control, modify, sequence } from '../../public/keys.mjs';

const key = (id) => KEYS.find((k) => k.id === id);

test('the row has every key a phone keyboard lacks', () => {
  assert.deepEqual(KEYS.map((k) => k.label), ['Esc', 'Tab', 'Ctrl', 'Alt', '←', '↓', '↑', '→', 'Home', 'End', 'PgUp', 'PgDn', '|', '~', '/', '-']);
});

test('cursor keys follow DECCKM and take modifiers', () => {
  assert.equal(sequence(key('up')), '\x1b[A');
  assert.equal(sequence(key('up'), { appCursor: true }), '\x1bOA');
  assert.equal(sequence(key('left'), { appCursor: true }), '\x1bOD');
  assert.equal(sequence(key('home')), '\x1b[H');
  assert.equal(sequence(key('end'), { appCursor: true }), '\x1bOF');
  assert.equal(sequence(key('right'), { ctrl: true }), '\x1b[1;5C');
  assert.equal(sequence(key('right'), { alt: true, appCursor: true }), '\x1b[1;3C');
  assert.equal(sequence(key('down'), { ctrl: true, alt: true }), '\x1b[1;7B');
  assert.equal(sequence(key('pgup')), '\x1b[5~');
  assert.equal(sequence(key('pgdn'), { ctrl: true }), '\x1b[6;5~');
});

test('Esc, Tab and characters, alone and with Ctrl or Alt', () => {
  assert.equal(sequence(key('esc')), '\x1b');
  assert.equal(sequence(key('esc'), { alt: true }), '\x1b\x1b');
  assert.equal(sequence(key('tab')), '\t');
  assert.equal(sequence(key('pipe')), '|');
  assert.equal(sequence(key('tilde')), '~');
  assert.equal(sequence(key('slash'), { ctrl: true }), '\x1f');
  assert.equal(sequence(key('dash'), { alt: true }), '\x1b-');
});

test('Ctrl and Alt on typed text', () => {
  assert.equal(control('c'), '\x03');
  assert.equal(control('C'), '\x03');
  assert.equal(control('['), '\x1b');
  assert.equal(control(' '), '\x00');
  assert.equal(control('?'), '\x7f');
  assert.equal(control('é'), 'é');
  assert.equal(modify('c', { ctrl: true }), '\x03');
  assert.equal(modify('x', { alt: true }), '\x1bx');
  assert.equal(modify('b', { ctrl: true, alt: true }), '\x1b\x02');
  assert.equal(modify('word', { ctrl: true }), 'word');
  assert.equal(modify('d'), 'd');
});
