/** The Kiln release this build belongs to; the daemon reports its own and the two are compared on connect. */
export const version = "0.1.0";
