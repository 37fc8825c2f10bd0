// The microphone's samples for the page (app.js), off the page's main thread: an AudioWorklet
// that hands over blocks of 4096 samples of the first channel (about 85 ms at 48 kHz), so that
// drawing the page can never make the recording lose audio.
"use strict";

const BLOCK = 4096;

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.n = 0;
  }

  process(inputs) {
    const x = inputs[0] && inputs[0][0];
    if (!x) return true;
    let i = 0;
    while (i < x.length) {
      const k = Math.min(x.length - i, BLOCK - this.n);
      this.block.set(x.subarray(i, i + k), this.n);
      this.n += k;
      i += k;
      if (this.n === BLOCK) {
        this.port.postMessage(this.block);
        this.block = new Float32Array(BLOCK);
        this.n = 0;
      }
    }
    return true;
  }
}

registerProcessor("ser-capture", Capture);
