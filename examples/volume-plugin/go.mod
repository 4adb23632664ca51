module github.com/pluginsd/pluginsd/examples/volume-plugin

go 1.26.0
