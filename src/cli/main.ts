#!/usr/bin/env node
console.log("mailgate: not yet");
