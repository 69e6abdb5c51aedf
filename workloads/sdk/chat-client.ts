// The user half of the SDK is the client package, @groupchat/client
// (clients/js): one source for the package, the chat page and this
// repository's tests, compiled here with the rest of the repository.
export * from '../../clients/js/src/node.js';
