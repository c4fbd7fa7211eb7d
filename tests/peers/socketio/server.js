// A Socket.IO 4 room server, written the way the Socket.IO documentation shows rooms:
// a socket joins a room, and a message to the room is relayed with io.to(room).emit.
// It prints "listening on PORT" once ready. Benchmarks only.

import { createServer } from "node:http";
import { Server } from "socket.io";

const httpServer = createServer();
const io = new Server(httpServer, { transports: ["websocket"], serveClient: false, maxHttpBufferSize: 1e6 });

io.on("connection", (socket) => {
  socket.on("join", (room) => socket.join(room));
  socket.on("msg", (room, payload) => io.to(room).emit("msg", payload));
});

httpServer.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
