"""Where every model comes from (a local folder, the Hub, packaged weights, a stand-in), and building one in a
child process so the OpenVINO process never imports torch."""
